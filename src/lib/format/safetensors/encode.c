/*
 * encode.c - a snapshot written as a safetensors file, byte for byte as
 * Hugging Face's serializer (which MindSpore calls) writes it
 * (safetensors-format.md section 1.7):
 *
 *   - tensors ordered by dtype, descending in HF's enum, then by name;
 *   - offsets back to back from 0;
 *   - compact JSON, "__metadata__" first, then the tensors in data order,
 *     each {"dtype","shape","data_offsets"} (json.c);
 *   - the JSON padded with spaces to a multiple of 8.
 *
 * Metadata: a tree read from a file with metadata keeps its keys in their
 * order; Int4 markers follow the Int4 tensors (a marker whose tensor is
 * gone or no longer Int4 goes; new ones come last, in name order); the
 * crc_num is recomputed where it was, or added last when the snapshot
 * asks for a checksum.  A tree without metadata of its own (converted
 * from a checkpoint) gets what MindSpore 2.7 writes: {"format":"ms"},
 * the markers, the crc_num.  No tensors: no metadata either (MindSpore
 * then calls save_file({}), the 16-byte file).  Since the header comes
 * first and holds the CRC, a checksum means reading every tensor twice.
 *
 * Maps and str parameters cannot be represented: an error naming them,
 * or (skip_unrepresentable) left out with a warning.  Names and dtypes
 * MindSpore could not load are written, with a warning.
 * Knows the tree only through the snapshot; writes only through the
 * emitter; takes no lock (the commit holds the tree's).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors/st_format.h"

/* One tensor to write. */
struct st_out {
	size_t idx; /* in the snapshot */
	const char *name;
	size_t name_len;
	const char *fname;
	const struct entry *e;
	uint64_t size;
	ckpt_dtype dt;
	uint8_t ndims;
	bool marked; /* its Int4 marker is written */
};

struct st_enc {
	const struct ckpt_snapshot *s;
	struct ckpt_error *err;
	struct st_out *out;
	size_t n;
	size_t *by_name; /* positions in out, by name */
	char bad[400];	 /* the unrepresentable ones, for the message */
	size_t nbad;
};

#define QUOTE(len) ((int)((len) > 120 ? 120 : (len)))

/* The serializer's order: dtype rank descending, then name. */
static int by_rank(const void *a, const void *b)
{
	const struct st_out *x = a, *y = b;
	int rx = ckpt_dtype_st_rank(x->dt), ry = ckpt_dtype_st_rank(y->dt);

	if (rx != ry)
		return ry - rx;
	return ckpt_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static int by_name(const void *a, const void *b, void *ctx)
{
	const struct st_out *o = ctx;
	const struct st_out *x = &o[*(const size_t *)a];
	const struct st_out *y = &o[*(const size_t *)b];

	return ckpt_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static void warn(const struct st_enc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void warn(const struct st_enc *c, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (!c->s->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->s->warn(c->s->warn_ctx, msg);
}

/* Why p cannot be written in safetensors, or NULL if it can. */
static const char *why_not(const struct ckpt_out_param *p)
{
	if (p->is_map)
		return "a map parameter";
	if (!ckpt_dtype_st_name(p->dtype) && p->dtype != CKPT_DT_INT4)
		return ckpt_dtype_name(p->dtype);
	if (!ckpt_utf8_valid(p->name, p->name_len))
		return "a name that is not UTF-8";
	if (st_name_refused(p->name, p->name_len))
		return "a name safetensors cannot hold";
	return NULL;
}

/* p cannot be written here: noted for the error, or left out. */
static void unrepresentable(struct st_enc *c, const struct ckpt_out_param *p)
{
	const char *what = why_not(p);
	size_t used = strlen(c->bad);

	if (c->s->skip_unrepresentable) {
		warn(c,
		     "left out '%s' (%s): safetensors cannot represent "
		     "it",
		     p->fname, what);
		return;
	}
	if (c->nbad++ < 4)
		snprintf(c->bad + used, sizeof(c->bad) - used, "%s'%.80s' (%s)",
			 used ? ", " : "", p->fname, what);
}

/* Pass one: every parameter to write into c->out. */
static ckpt_err collect(struct st_enc *c)
{
	const struct ckpt_snapshot *s = c->s;
	struct ckpt_out_param p;
	ckpt_err r;

	c->out = calloc(s->count + 1, sizeof(*c->out));
	c->by_name = malloc((s->count + 1) * sizeof(*c->by_name));
	if (!c->out || !c->by_name)
		return ckpt_fail(c->err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < s->count; i++) {
		r = s->param(s, i, &p, c->err);
		if (r)
			return r;
		if (p.skip)
			continue;
		if (why_not(&p)) {
			unrepresentable(c, &p);
			continue;
		}
		c->out[c->n++] = (struct st_out){.idx = i,
						 .name = p.name,
						 .name_len = p.name_len,
						 .fname = p.fname,
						 .e = p.entry,
						 .size = p.size,
						 .dt = p.dtype,
						 .ndims = (uint8_t)p.ndims};
	}
	if (c->nbad)
		return ckpt_fail(c->err, CKPT_ERR_UNSUPPORTED, 0,
				 "safetensors cannot represent %zu "
				 "parameter%s: %s%s; leave %s out "
				 "(ckpt convert --skip-unrepresentable, or "
				 "remove %s)",
				 c->nbad, c->nbad > 1 ? "s" : "", c->bad,
				 c->nbad > 4 ? ", ..." : "",
				 c->nbad > 1 ? "them" : "it",
				 c->nbad > 1 ? "them" : "it");
	qsort(c->out, c->n, sizeof(*c->out), by_rank);
	for (size_t i = 0; i < c->n; i++)
		c->by_name[i] = i;
	qsort_r(c->by_name, c->n, sizeof(*c->by_name), by_name, c->out);
	return CKPT_OK;
}

/* The tensor to write named key, or NULL. */
static struct st_out *find_out(const struct st_enc *c, const char *key,
			       size_t len)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct st_out *o = &c->out[c->by_name[mid]];
		int cmp = ckpt_name_cmp(o->name, o->name_len, key, len);
		if (!cmp)
			return o;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* st_read_fn over an entry of the snapshot. */
struct entry_reader {
	const struct ckpt_snapshot *s;
	const struct entry *e;
};

static ckpt_err read_entry(void *ctx, uint64_t off, void *buf, size_t n,
			   struct ckpt_error *err)
{
	const struct entry_reader *er = ctx;

	return er->s->read(er->s, er->e, off, buf, n, err);
}

/* MindSpore's crc_num of what is written. */
static ckpt_err crc_of(const struct st_enc *c, uint32_t *crc)
{
	ckpt_err r = CKPT_OK;

	*crc = 0;
	for (size_t i = 0; i < c->n && !r; i++) {
		const struct st_out *o = &c->out[c->by_name[i]];
		struct entry_reader er = {.s = c->s, .e = o->e};
		r = st_crc_tensor(crc, o->name, o->name_len, o->dt, o->ndims,
				  o->size, read_entry, &er, c->err);
	}
	return r;
}

/* Appends "key":"value" (comma first unless it is the first). */
static void put_item(struct st_text *t, size_t *count, const char *key,
		     const char *value, bool json)
{
	if ((*count)++)
		st_text_put(t, ",", 1);
	st_text_str(t, key, strlen(key));
	st_text_put(t, ":", 1);
	if (json)
		st_text_put(t, value, strlen(value));
	else
		st_text_str(t, value, strlen(value));
}

/* The markers of the Int4 tensors not marked yet, in name order. */
static void put_new_markers(struct st_enc *c, struct st_text *t, size_t *count)
{
	for (size_t i = 0; i < c->n; i++) {
		struct st_out *o = &c->out[c->by_name[i]];
		if (o->dt != CKPT_DT_INT4 || o->marked)
			continue;
		if ((*count)++)
			st_text_put(t, ",", 1);
		st_text_str(t, o->name, o->name_len);
		st_text_put(t, ":\"Int4\"", 7);
		o->marked = true;
	}
}

/* The kept metadata items of the snapshot, crc_num (if any) where it was;
 * whether it was written in *crc_done. */
static void put_own_items(struct st_enc *c, struct st_text *t, size_t *count,
			  const char *crc, bool *crc_done)
{
	for (size_t i = 0; i < c->s->nmeta; i++) {
		const struct ckpt_meta_item *it = &c->s->meta[i];
		struct st_out *o = find_out(c, it->key, strlen(it->key));

		if (strcmp(it->key, ST_CRC_KEY) == 0) {
			if (crc && !*crc_done)
				put_item(t, count, ST_CRC_KEY, crc, false);
			*crc_done = true;
			continue;
		}
		if (o && o->dt == CKPT_DT_INT4) { /* its marker, here */
			if (!o->marked)
				put_item(t, count, it->key, "Int4", false);
			o->marked = true;
			continue;
		}
		if (!it->marker)
			put_item(t, count, it->key, it->value, it->json);
	}
}

/* The "__metadata__" object, if there is one to write. */
static void put_metadata(struct st_enc *c, struct st_text *t, const char *crc)
{
	struct st_text m = {0};
	size_t count = 0;
	bool crc_done = false, any;

	if (!c->n) /* MindSpore: save_file({}), without metadata */
		return;
	if (c->s->own_meta)
		put_own_items(c, &m, &count, crc, &crc_done);
	else if (c->n)
		put_item(&m, &count, "format", "ms", false);
	put_new_markers(c, &m, &count);
	if (crc && !crc_done)
		put_item(&m, &count, ST_CRC_KEY, crc, false);
	any = count || (c->s->own_meta && c->s->has_meta);
	if (any) {
		st_text_put(t, "\"__metadata__\":{", 16);
		st_text_put(t, m.p, m.len);
		st_text_put(t, "}", 1);
	}
	t->nomem |= m.nomem;
	st_text_free(&m);
}

/* Warns of what MindSpore 2.7's loader would refuse: dtypes outside its
 * 13, a tensor named like a metadata key. */
static void warn_unloadable(const struct st_enc *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct st_out *o = &c->out[i];
		if (!ckpt_dtype_ms_loads(o->dt))
			warn(c,
			     "'%s' is %s, which MindSpore's safetensors "
			     "loader cannot read (it reads 13 dtypes)",
			     o->fname, ckpt_dtype_name(o->dt));
	}
	for (size_t i = 0; i < c->s->nmeta && c->s->own_meta; i++) {
		const char *key = c->s->meta[i].key;
		const struct st_out *o = find_out(c, key, strlen(key));
		if (o && o->dt != CKPT_DT_INT4 &&
		    !c->s->meta[i].marker) /* a stale marker is not written */
			warn(c,
			     "the tensor '%s' is named like a key of "
			     "__metadata__: MindSpore 2.7 cannot load the file",
			     o->fname);
	}
	if (!c->s->own_meta && c->n &&
	    (find_out(c, "format", 6) ||
	     (c->s->checksum && find_out(c, ST_CRC_KEY, 7))))
		warn(c, "a tensor is named like a key of __metadata__ "
			"('format' or 'crc_num'): MindSpore 2.7 cannot load "
			"the file");
}

/* The tensors' entries, in data order. */
static ckpt_err put_tensors(struct st_enc *c, struct st_text *t, bool comma)
{
	struct ckpt_out_param p;
	uint64_t at = 0;

	for (size_t i = 0; i < c->n; i++) {
		const struct st_out *o = &c->out[i];
		ckpt_dtype dt = o->dt == CKPT_DT_INT4 ? CKPT_DT_INT8 : o->dt;
		const char *dname = ckpt_dtype_st_name(dt);
		ckpt_err r = c->s->param(c->s, o->idx, &p, c->err);

		if (r)
			return r;
		if (comma || i)
			st_text_put(t, ",", 1);
		st_text_str(t, o->name, o->name_len);
		st_text_put(t, ":{\"dtype\":", 10);
		st_text_str(t, dname, strlen(dname));
		st_text_put(t, ",\"shape\":[", 10);
		for (uint32_t d = 0; d < p.ndims; d++) {
			if (d)
				st_text_put(t, ",", 1);
			st_text_u64(t, (uint64_t)p.dims[d]);
		}
		st_text_put(t, "],\"data_offsets\":[", 18);
		st_text_u64(t, at);
		st_text_put(t, ",", 1);
		at += o->size;
		st_text_u64(t, at);
		st_text_put(t, "]}", 2);
	}
	return CKPT_OK;
}

/* The whole header, length first, padded with spaces to a multiple of 8. */
static ckpt_err make_header(struct st_enc *c, struct st_text *t,
			    const char *crc)
{
	uint8_t len[8] = {0};
	ckpt_err r;

	st_text_put(t, (const char *)len, 8); /* filled in below */
	st_text_put(t, "{", 1);
	put_metadata(c, t, crc);
	r = put_tensors(c, t, t->len > 9);
	if (r)
		return r;
	st_text_put(t, "}", 1);
	while ((t->len - 8) % 8)
		st_text_put(t, " ", 1);
	if (t->nomem)
		return ckpt_fail(c->err, CKPT_ERR_NOMEM, 0, "out of memory");
	if (t->len - 8 > ST_HEADER_MAX)
		return ckpt_fail(c->err, CKPT_ERR_UNSUPPORTED, 0,
				 "the safetensors header would be %zu bytes, "
				 "over the 100,000,000 that its readers "
				 "accept: write fewer tensors or shorter "
				 "names",
				 t->len - 8);
	for (int k = 0; k < 8; k++)
		t->p[k] = (char)((uint64_t)(t->len - 8) >> (8 * k));
	return CKPT_OK;
}

ckpt_err st_encode(const struct ckpt_snapshot *s, struct ckpt_emitter *em,
		   struct ckpt_error *err)
{
	struct st_enc c = {.s = s, .err = err};
	struct st_text t = {0};
	char crc[16];
	uint32_t sum;
	ckpt_err r = collect(&c);

	if (!r && s->checksum) {
		r = crc_of(&c, &sum);
		snprintf(crc, sizeof(crc), "%u", sum);
	}
	if (!r)
		r = make_header(&c, &t, s->checksum ? crc : NULL);
	if (!r) {
		warn_unloadable(&c);
		r = em->ops->bytes(em, t.p, t.len);
	}
	for (size_t i = 0; i < c.n && !r; i++)
		if (c.out[i].size)
			r = em->ops->entry(em, c.out[i].e, 0, c.out[i].size);
	st_text_free(&t);
	free(c.out);
	free(c.by_name);
	return r;
}
