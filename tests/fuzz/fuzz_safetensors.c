/*
 * fuzz_safetensors.c - libFuzzer harness: any bytes as a safetensors file.
 * Opens them through ckpt_open_fd forced to the format (the crc_num
 * checked) and by content (crc_num skipped, so that more files get
 * through); for a file the safetensors scan takes, checks what the index
 * promises (parameters in data order, back to back inside the file, sizes
 * that match dtype and shape, markers only on Int4 tensors), reads every
 * tensor and compares it with the input, then encodes it through the seam
 * (format.h) and checks the result: it opens (its crc_num verifies), holds
 * the same tensors, and encodes again to the same bytes.
 * Nothing may crash, leak or hang.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ckpt.h"
#include "format/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd_of(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	return fd;
}

static struct ckpt_file *open_bytes(const uint8_t *data, size_t size,
				    const char *format, bool skip_crc)
{
	struct ckpt_open_opts o = {.skip_crc = skip_crc, .format = format};
	struct ckpt_file *f = NULL;
	struct ckpt_error err;

	if (ckpt_open_fd(memfd_of(data, size), "fuzz", &o, &f, &err) != CKPT_OK)
		return NULL;
	return f;
}

/* The shown bytes of t, read in pieces of 1000 (malloc'd, size + 1). */
static uint8_t *read_all(const struct ckpt_file *f, const struct ckpt_tensor *t)
{
	uint8_t *b = malloc(t->size + 1);
	struct ckpt_error err;
	size_t n;

	if (!b)
		abort();
	for (uint64_t off = 0; off < t->size; off += n)
		if (ckpt_tensor_read(f, t, b + off, 1000, off, &n, &err) ||
		    n == 0)
			abort(); /* the index promised these bytes */
	if (ckpt_tensor_read(f, t, b, 1, t->size, &n, &err) || n)
		abort();
	return b;
}

/* What the index of a safetensors file of data[size] must be. */
static void check_index(const struct ckpt_file *f, const uint8_t *data,
			size_t size)
{
	const struct ckpt_stats *st = ckpt_stats(f);
	uint64_t at = 8 + st->header_size, sum = 0;
	size_t nint4 = 0, nmarkers = 0;

	if (at > size || st->file_size != size)
		abort();
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		const struct ckpt_tensor *t = &p->tensor;
		uint64_t need;
		uint8_t *b;

		if (p->kind != CKPT_PARAM_TENSOR ||
		    ckpt_find(f, p->fname) < 0 ||
		    (size_t)ckpt_find(f, p->fname) != i)
			abort();
		if (!ckpt_shape_bytes(t->dtype, t->dims, t->ndims, &need) ||
		    need != t->size || t->stored != t->size)
			abort();
		if (t->nextents != (t->size > 0))
			abort();
		if (t->size &&
		    (t->extents[0].pos != 0 || t->extents[0].src != at ||
		     t->extents[0].len != t->size ||
		     t->extents[0].src + t->size > size))
			abort(); /* in data order, back to back, inside */
		if (t->dtype == CKPT_DT_INT4)
			nint4++;
		b = read_all(f, t);
		if (t->size && memcmp(b, data + at, t->size) != 0)
			abort();
		free(b);
		at += t->size;
		sum += t->size;
	}
	if (at != size || st->data_bytes != sum)
		abort(); /* the data covered exactly */
	if (!ckpt_has_metadata(f) && ckpt_meta_count(f))
		abort();
	for (size_t i = 0; i < ckpt_meta_count(f); i++) {
		const struct ckpt_meta_item *m = ckpt_meta_at(f, i);
		char *fname;
		ssize_t k;

		if (!m->key || !m->value)
			abort();
		if (!m->marker)
			continue;
		fname = ckpt_name_escape(m->key, strlen(m->key));
		k = fname ? ckpt_find(f, fname) : -1;
		free(fname);
		if (m->json || strcmp(m->value, "Int4") != 0 || k < 0 ||
		    ckpt_param_at(f, (size_t)k)->tensor.dtype != CKPT_DT_INT4)
			abort();
		nmarkers++;
	}
	if (nmarkers != nint4)
		abort();
}

/* ---- the encode of an opened file, as it is ---------------------------- */

static ckpt_err snap_param(const struct ckpt_snapshot *s, size_t i,
			   struct ckpt_out_param *p, struct ckpt_error *err)
{
	const struct ckpt_param *q = ckpt_param_at(s->ctx, i);
	(void)err;

	memset(p, 0, sizeof(*p));
	p->untouched = true;
	p->name = q->name;
	p->name_len = q->name_len;
	p->fname = q->fname;
	p->dtype = q->tensor.dtype;
	p->ndims = q->tensor.ndims;
	memcpy(p->dims, q->tensor.dims, q->tensor.ndims * sizeof(int64_t));
	p->size = q->tensor.size;
	p->entry = (const struct entry *)(const void *)q;
	p->orig = q;
	p->orig_fd = ckpt_fd(s->ctx);
	return CKPT_OK;
}

static ckpt_err snap_read(const struct ckpt_snapshot *s, const struct entry *e,
			  uint64_t off, void *buf, size_t len,
			  struct ckpt_error *err)
{
	const struct ckpt_param *q = (const struct ckpt_param *)(const void *)e;
	size_t done;

	if (off + len > q->tensor.size ||
	    ckpt_tensor_read(s->ctx, &q->tensor, buf, len, off, &done, err) ||
	    done != len)
		abort();
	return CKPT_OK;
}

/* Collects what the encode emits. */
struct sink {
	struct ckpt_emitter em; /* first: the ops get &em */
	const struct ckpt_file *f;
	uint8_t *p;
	size_t len, cap;
};

static void sink_put(struct sink *k, const void *p, size_t n)
{
	if (k->len + n > k->cap) {
		k->cap = (k->len + n) * 2;
		k->p = realloc(k->p, k->cap);
		if (!k->p)
			abort();
	}
	memcpy(k->p + k->len, p, n);
	k->len += n;
}

static ckpt_err sink_bytes(struct ckpt_emitter *em, const void *p, size_t n)
{
	sink_put((struct sink *)em, p, n);
	return CKPT_OK;
}

static ckpt_err sink_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			   uint64_t len)
{
	(void)em;
	(void)fd;
	(void)pos;
	(void)len;
	abort(); /* safetensors' encode has no use for it */
}

static ckpt_err sink_entry(struct ckpt_emitter *em, const struct entry *e,
			   uint64_t off, uint64_t len)
{
	struct sink *k = (struct sink *)em;
	const struct ckpt_param *q = (const struct ckpt_param *)(const void *)e;
	uint8_t *b = read_all(k->f, &q->tensor);

	if (len == 0 || off + len > q->tensor.size)
		abort();
	sink_put(k, b + off, (size_t)len);
	free(b);
	return CKPT_OK;
}

static const struct ckpt_emit_ops sink_ops = {
	.bytes = sink_bytes,
	.range = sink_range,
	.entry = sink_entry,
};

static void no_warn(void *ctx, const char *msg)
{
	(void)ctx;
	if (!msg || strchr(msg, '\n'))
		abort();
}

/* Encodes f as it is (its crc_num recomputed if it has one) into *out;
 * false if the encode refuses it. */
static bool encode(const struct ckpt_file *f, uint8_t **out, size_t *len)
{
	struct sink k = {.em = {.ops = &sink_ops}, .f = f};
	struct ckpt_snapshot s = {
		.count = ckpt_count(f),
		.checksum = ckpt_stats(f)->has_crc,
		.param = snap_param,
		.read = snap_read,
		.meta = ckpt_meta_at(f, 0),
		.nmeta = ckpt_meta_count(f),
		.own_meta = true,
		.has_meta = ckpt_has_metadata(f),
		.warn = no_warn,
		.ctx = f,
	};
	struct ckpt_error err;

	if (ckpt_format_safetensors.encode(&s, &k.em, &err)) {
		free(k.p);
		return false;
	}
	*out = k.p;
	*len = k.len;
	return true;
}

/* g (f encoded) holds f's tensors. */
static void check_same(const struct ckpt_file *f, const struct ckpt_file *g)
{
	if (ckpt_count(f) != ckpt_count(g))
		abort();
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		ssize_t k = ckpt_find(g, p->fname);
		const struct ckpt_param *q;
		uint8_t *a, *b;

		if (k < 0)
			abort();
		q = ckpt_param_at(g, (size_t)k);
		if (q->tensor.dtype != p->tensor.dtype ||
		    q->tensor.ndims != p->tensor.ndims ||
		    q->tensor.size != p->tensor.size ||
		    memcmp(q->tensor.dims, p->tensor.dims,
			   p->tensor.ndims * sizeof(int64_t)) != 0)
			abort();
		a = read_all(f, &p->tensor);
		b = read_all(g, &q->tensor);
		if (memcmp(a, b, p->tensor.size) != 0)
			abort();
		free(a);
		free(b);
	}
}

static void check_encode(const struct ckpt_file *f)
{
	uint8_t *out, *again;
	size_t len, len2;
	struct ckpt_file *g;

	if (!encode(f, &out, &len))
		return;
	/* a file our scan takes, its crc_num right */
	g = open_bytes(out, len, "safetensors", false);
	if (!g || ckpt_stats(g)->header_size % 8)
		abort();
	check_index(g, out, len);
	check_same(f, g);
	if (!encode(g, &again, &len2) || len2 != len ||
	    memcmp(again, out, len) != 0)
		abort(); /* written as the serializer writes: a fixed point */
	free(again);
	ckpt_close(g);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ckpt_file *forced = open_bytes(data, size, "safetensors", false);
	struct ckpt_file *f = open_bytes(data, size, NULL, true);

	if (forced) {
		check_index(forced, data, size);
		if (ckpt_verify_crc(forced, NULL) != CKPT_OK)
			abort(); /* it was checked at open */
	}
	if (f && strcmp(ckpt_format_of(f), "safetensors") == 0) {
		check_index(f, data, size);
		if (forced && ckpt_count(forced) != ckpt_count(f))
			abort();
		check_encode(f);
	} else if (f) {
		/* the ckpt scanner took it: read it as fuzz_scan does */
		for (size_t i = 0; i < ckpt_count(f); i++) {
			const struct ckpt_param *p = ckpt_param_at(f, i);
			if (p->kind == CKPT_PARAM_TENSOR)
				free(read_all(f, &p->tensor));
			else
				for (int k = 0; k < CKPT_MAP_NTENSORS; k++)
					free(read_all(f, &p->map[k]));
		}
	}
	ckpt_close(forced);
	ckpt_close(f);
	return 0;
}
