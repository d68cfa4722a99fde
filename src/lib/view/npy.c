/*
 * npy.c - the .npy form of a tensor (ckpt_npy.h): the header np.save
 * writes for it (the parser of .npy headers is npy_parse.c).
 *
 * The typestr of each dtype is a column of dtype.c's table; this file
 * knows numpy's header layout (numpy/lib/format.py of 1.24: the keys in
 * sorted order, repr() of the values, GROWTH_AXIS_MAX_DIGITS spaces for
 * shape[0] to grow in place, padding to ARRAY_ALIGN).  Pure functions on
 * constant tables: no allocation, no state.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ckpt_npy.h"
#include "format/format.h"
#include "view/view.h"

#define GROWTH_DIGITS 21 /* numpy's GROWTH_AXIS_MAX_DIGITS */

void npy_field_name(ckpt_dtype dt, char name[NPY_FIELD_MAX])
{
	const char *s = ckpt_dtype_name(dt);
	size_t i;

	for (i = 0; s[i] && i + 1 < NPY_FIELD_MAX; i++)
		name[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a')
						     : s[i];
	name[i] = '\0';
}

int ckpt_npy_descr(ckpt_dtype dt, uint64_t size, char *buf, size_t cap)
{
	bool field = false;
	const char *ts = ckpt_dtype_npy(dt, &field);
	char name[NPY_FIELD_MAX];

	if (!ts)
		return -1;
	if (dt == CKPT_DT_STR)
		return snprintf(buf, cap, "'%s%" PRIu64 "'", ts, size / 4);
	if (!field)
		return snprintf(buf, cap, "'%s'", ts);
	npy_field_name(dt, name);
	return snprintf(buf, cap, "[('%s', '%s')]", name, ts);
}

bool npy_numpy_fits(const struct npy_shape *ns, uint64_t itemsize,
		    uint64_t *bytes)
{
	uint64_t n = itemsize;
	bool empty = false;

	for (uint32_t i = 0; i < ns->ndims; i++) {
		if (ns->dims[i] == 0)
			empty = true;
		else if (__builtin_mul_overflow(n, (uint64_t)ns->dims[i], &n) ||
			 n > INT64_MAX)
			return false;
	}
	*bytes = empty ? 0 : n;
	return true;
}

/* F4 and F6 as bytes: the last dim counts bytes when its elements fill
 * whole ones, else the shape is the 1-D byte count. */
static void packed_shape(struct npy_shape *ns, unsigned bits, uint64_t size)
{
	int64_t *last = ns->ndims ? &ns->dims[ns->ndims - 1] : NULL;
	int64_t b;

	if (last && !__builtin_mul_overflow(*last, (int64_t)bits, &b) &&
	    b % 8 == 0) {
		*last = b / 8;
		return;
	}
	ns->ndims = 1;
	ns->dims[0] = (int64_t)size; /* a shown size fits */
}

/* The shape numpy shows for a tensor of dt, dims[ndims], size bytes. */
static ckpt_err npy_shape(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			  uint64_t size, struct npy_shape *ns,
			  struct ckpt_error *err)
{
	unsigned bits = ckpt_dtype_bits(dt);
	char shape[256];
	uint64_t need;

	if (!bits)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 ".npy header: dtype %d out of range", (int)dt);
	if (ndims > CKPT_NPY_MAX_DIMS)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "a tensor of %u dims has no .npy form: numpy "
				 "arrays have at most %d",
				 ndims, CKPT_NPY_MAX_DIMS);
	ckpt_shape_format(dims, ndims, shape, sizeof(shape));
	if (dt == CKPT_DT_STR) {
		if (ndims || !size || size % 4)
			return ckpt_fail(err, CKPT_ERR_INVAL, 0,
					 "a str tensor of shape %s and %" PRIu64
					 " bytes has no .npy form: it needs "
					 "shape [] and whole UTF-32 code "
					 "points",
					 shape, size);
		if (size > NPY_ITEMSIZE_MAX)
			return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
					 "a str of %" PRIu64 " bytes has no "
					 ".npy form: numpy strings hold at "
					 "most %d bytes",
					 size, NPY_ITEMSIZE_MAX);
		ns->ndims = 0;
		return CKPT_OK;
	}
	if (!ckpt_shape_bytes(dt, dims, ndims, &need) || need != size)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "a %s tensor of shape %s does not hold its "
				 "%" PRIu64 " bytes: set a shape that fits the "
				 "data for a .npy form",
				 ckpt_dtype_name(dt), shape, size);
	ns->ndims = ndims;
	memcpy(ns->dims, dims, ndims * sizeof(*dims));
	if (bits % 8)
		packed_shape(ns, bits, size);
	if (!npy_numpy_fits(ns, bits % 8 ? 1 : bits / 8, &need))
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "a %s tensor of shape %s has no .npy form: "
				 "numpy arrays hold at most 2^63 - 1 bytes",
				 ckpt_dtype_name(dt), shape);
	return CKPT_OK;
}

/* The dict text of the header, before the padding, into buf (non-NULL)
 * like snprintf: its whole length. */
static size_t dict_text(ckpt_dtype dt, uint64_t size,
			const struct npy_shape *ns, char *buf, size_t cap)
{
	size_t n = 0;
	int w;

#define AT buf + (n < cap ? n : cap), n < cap ? cap - n : 0
#define PUT(...)                               \
	do {                                   \
		w = snprintf(AT, __VA_ARGS__); \
		n += w > 0 ? (size_t)w : 0;    \
	} while (0)
	PUT("{'descr': ");
	w = ckpt_npy_descr(dt, size, AT);
	n += w > 0 ? (size_t)w : 0;
	PUT(", 'fortran_order': False, 'shape': (");
	for (uint32_t i = 0; i < ns->ndims; i++)
		PUT(i ? ", %" PRId64 : "%" PRId64, ns->dims[i]);
	PUT(ns->ndims == 1 ? ",), }" : "), }");
	if (ns->ndims) { /* room for shape[0] to grow, as numpy leaves */
		int digits = snprintf(NULL, 0, "%" PRId64, ns->dims[0]);
		PUT("%*s", GROWTH_DIGITS - digits, "");
	}
#undef PUT
#undef AT
	return n;
}

/* The whole header around a dict text of dict bytes: the prefix, the
 * text, spaces and a '\n' up to a multiple of CKPT_NPY_ALIGN (numpy pads
 * a whole CKPT_NPY_ALIGN when the text alone would end aligned). */
static size_t total_len(size_t dict)
{
	size_t unpadded = NPY_PREFIX_V1 + dict + 1;

	return unpadded + CKPT_NPY_ALIGN - unpadded % CKPT_NPY_ALIGN;
}

ckpt_err ckpt_npy_header_len(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			     uint64_t size, size_t *len, struct ckpt_error *err)
{
	struct npy_shape ns;
	char none[1];
	ckpt_err e = npy_shape(dt, dims, ndims, size, &ns, err);

	if (e)
		return e;
	*len = total_len(dict_text(dt, size, &ns, none, 0));
	return CKPT_OK;
}

ckpt_err ckpt_npy_header_read(ckpt_dtype dt, const int64_t *dims,
			      uint32_t ndims, uint64_t size, void *buf,
			      size_t cap, uint64_t off, size_t *done,
			      struct ckpt_error *err)
{
	char h[CKPT_NPY_HEADER_MAX];
	struct npy_shape ns;
	size_t dict, total, hlen;
	ckpt_err e = npy_shape(dt, dims, ndims, size, &ns, err);

	if (e)
		return e;
	dict = dict_text(dt, size, &ns, h + NPY_PREFIX_V1,
			 sizeof(h) - NPY_PREFIX_V1);
	total = total_len(dict);
	if (total > sizeof(h)) /* the bound of ckpt_npy.h is wrong */
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 ".npy header of %zu bytes: more than "
				 "CKPT_NPY_HEADER_MAX",
				 total);
	hlen = total - NPY_PREFIX_V1;
	memcpy(h, NPY_MAGIC "\x01\x00", 8);
	h[8] = (char)(hlen & 0xff);
	h[9] = (char)(hlen >> 8);
	memset(h + NPY_PREFIX_V1 + dict, ' ', hlen - dict - 1);
	h[total - 1] = '\n';
	*done = 0;
	if (off < total) {
		*done = total - (size_t)off < cap ? total - (size_t)off : cap;
		if (*done)
			memcpy(buf, h + off, *done);
	}
	return CKPT_OK;
}
