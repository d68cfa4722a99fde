/*
 * fuzz_parsers.c - libFuzzer harness for the parsers of user input that
 * setxattr and file names go through: shapes, dtypes and escaped names;
 * and of .npy headers (ckpt_npy.h).  Besides not crashing, each must
 * round-trip: what parses, formats back to something that parses to the
 * same value.
 */
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A .npy header that parses is one the writer gives back, aligned, and
 * that parses to the same dtype, shape and size. */
static void npy_round_trip(const uint8_t *data, size_t size)
{
	struct ckpt_npy_info in, again;
	char h[CKPT_NPY_HEADER_MAX];
	size_t len, done;

	if (ckpt_npy_parse(data, size, &in, NULL) != CKPT_OK)
		return;
	if (in.header_len > size ||
	    ckpt_npy_header_len(in.dtype, in.dims, in.ndims, in.size, &len,
				NULL) ||
	    ckpt_npy_header_read(in.dtype, in.dims, in.ndims, in.size, h,
				 sizeof(h), 0, &done, NULL) ||
	    done != len || len % CKPT_NPY_ALIGN ||
	    ckpt_npy_parse(h, done, &again, NULL) || again.header_len != len ||
	    again.dtype != in.dtype || again.size != in.size ||
	    again.ndims != in.ndims ||
	    memcmp(again.dims, in.dims, in.ndims * sizeof(*in.dims)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t dims[CKPT_MAX_DIMS], again[CKPT_MAX_DIMS];
	uint32_t n, m;
	char text[CKPT_MAX_DIMS * 21 + 3], *name, *fname, *esc;
	size_t len;
	ckpt_dtype dt, dt2;

	npy_round_trip(data, size);
	if (ckpt_shape_parse((const char *)data, size, dims, &n)) {
		int w = ckpt_shape_format(dims, n, text, sizeof(text));
		if (w < 0 || (size_t)w >= sizeof(text) ||
		    !ckpt_shape_parse(text, (size_t)w, again, &m) || m != n ||
		    memcmp(dims, again, n * sizeof(*dims)))
			abort();
	}
	if (ckpt_dtype_parse((const char *)data, size, &dt)) {
		const char *nm = ckpt_dtype_name(dt);
		bool stored = ckpt_dtype_parse_stored(nm, strlen(nm), &dt2);
		/* the shown name parses back; as a tensor_type for
		 * MindSpore's dtypes only */
		if (!ckpt_dtype_parse(nm, strlen(nm), &dt2) || dt2 != dt ||
		    stored != (dt <= CKPT_DT_STR))
			abort();
	}
	fname = malloc(size + 1);
	if (!fname)
		return 0;
	memcpy(fname, data, size);
	fname[size] = '\0';
	if (ckpt_name_unescape(fname, &name, &len) == CKPT_OK) {
		esc = ckpt_name_escape(name, len);
		if (!esc || strcmp(esc, fname) != 0)
			abort();
		free(esc);
		free(name);
	}
	esc = ckpt_name_escape((const char *)data, size);
	if (esc && (ckpt_name_unescape(esc, &name, &len) != CKPT_OK ||
		    len != size || memcmp(name, data, size)))
		abort();
	if (esc)
		free(name);
	free(esc);
	free(fname);
	return 0;
}
