/*
 * header.c - a safetensors header read into the index: the 8-byte length,
 * the JSON (parsed by jansson: duplicate keys refused, key order kept,
 * length bounded), every tensor entry and __metadata__ validated as
 * Hugging Face's loader does (safetensors-format.md section 2.2), and,
 * lenient as it is: any key order (entries are sorted by their offsets),
 * unpadded headers, surrounding whitespace.  Refused, with the file, the
 * tensor and the problem named: a file shorter than its header, a header
 * over 100,000,000 bytes, invalid UTF-8 or JSON, unknown dtypes, sizes
 * that do not match the shape, holes, overlaps, trailing bytes.
 *
 * Tensors go into the index in data order, each one extent of the file
 * (zero-copy, as for the ckpt format).  The JSON tree lives only while
 * the scan runs: what stays grows with the tensor count alone.
 * Int4 markers ("NAME": "Int4" in the metadata, MindSpore 2.7) make the
 * I8 tensor NAME an Int4 one.  Takes no lock: the file is the caller's.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors/st_format.h"

/* A tensor entry of the header, before it goes into the index. */
struct st_entry {
	const char *name; /* the JSON's key, valid while the tree lives */
	size_t name_len;
	json_t *shape;
	uint64_t begin, end;
	size_t jpos; /* its place in the JSON, for messages and order */
	ckpt_dtype dt;
};

/* What the scan works on. */
struct st_scan {
	struct ckpt_file *f;
	struct ckpt_error *err;
	uint64_t data_start; /* 8 + N */
};

/* Longest part of a name quoted in a message. */
#define QUOTE(len) ((int)((len) > 200 ? 200 : (len)))

static ckpt_err corrupt(struct st_scan *s, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fails with "PATH: <fmt>" as CKPT_ERR_CORRUPT. */
static ckpt_err corrupt(struct st_scan *s, uint64_t at, const char *fmt, ...)
{
	char msg[480];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ckpt_fail(s->err, CKPT_ERR_CORRUPT, at, "%s: %s",
			 ckpt_path(s->f), msg);
}

/* Reads the header length and the header itself into *buf (malloc'd,
 * *n bytes). */
static ckpt_err read_header(struct st_scan *s, char **buf, uint64_t *n)
{
	uint64_t size = s->f->stats.file_size, len = 0;
	uint8_t b[8];

	*buf = NULL;
	if (size < 8 || ckpt_pread_full(s->f->fd, b, 8, 0) != 8)
		return corrupt(s, 0,
			       "%llu bytes: too short for a safetensors "
			       "file (it starts with an 8-byte header length)",
			       (unsigned long long)size);
	for (int i = 7; i >= 0; i--)
		len = len << 8 | b[i];
	if (len > ST_HEADER_MAX)
		return corrupt(s, 0,
			       "the header length says %llu bytes, over the "
			       "100,000,000 that safetensors readers accept: "
			       "damaged, or not a safetensors file",
			       (unsigned long long)len);
	if (len > size - 8)
		return corrupt(s, 0,
			       "the header length says %llu bytes, but only "
			       "%llu follow it: the file is truncated",
			       (unsigned long long)len,
			       (unsigned long long)(size - 8));
	*buf = malloc(len ? len : 1);
	if (!*buf)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	if (ckpt_pread_full(s->f->fd, *buf, len, 8) != (ssize_t)len)
		return ckpt_fail(s->err, CKPT_ERR_IO, 8, "%s: reading: %s",
				 ckpt_path(s->f), strerror(errno));
	*n = len;
	s->data_start = 8 + len;
	return CKPT_OK;
}

/* A non-negative JSON integer into *v. */
static bool get_u64(const json_t *j, uint64_t *v)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*v = (uint64_t)json_integer_value(j);
	return true;
}

/* The dims of shape (an array of non-negative integers) into dims. */
static bool get_dims(const json_t *shape, int64_t *dims, uint32_t *ndims)
{
	size_t n = json_array_size(shape);

	if (!json_is_array(shape) || n > CKPT_MAX_DIMS)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		if (!get_u64(json_array_get(shape, i), &v))
			return false;
		dims[i] = (int64_t)v;
	}
	*ndims = (uint32_t)n;
	return true;
}

/* Reads and checks the entry of tensor e (its name set) from j. */
static ckpt_err get_entry(struct st_scan *s, struct st_entry *e, json_t *j)
{
	const json_t *dt = json_object_get(j, "dtype");
	const json_t *off = json_object_get(j, "data_offsets");
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	uint64_t need;
	int nl = QUOTE(e->name_len);

	if (!json_is_object(j) || !json_is_string(dt) || !off)
		return corrupt(s, 8,
			       "tensor '%.*s': not an object with \"dtype\", "
			       "\"shape\" and \"data_offsets\"",
			       nl, e->name);
	if (!ckpt_dtype_st_parse(json_string_value(dt), json_string_length(dt),
				 &e->dt))
		return corrupt(s, 8,
			       "tensor '%.*s': unknown dtype '%.40s' (known: "
			       "those of safetensors 0.8)",
			       nl, e->name, json_string_value(dt));
	e->shape = json_object_get(j, "shape");
	if (!get_dims(e->shape, dims, &ndims))
		return corrupt(s, 8,
			       "tensor '%.*s': \"shape\" is not a list of at "
			       "most %d non-negative integers",
			       nl, e->name, CKPT_MAX_DIMS);
	if (!json_is_array(off) || json_array_size(off) != 2 ||
	    !get_u64(json_array_get(off, 0), &e->begin) ||
	    !get_u64(json_array_get(off, 1), &e->end) || e->end < e->begin)
		return corrupt(s, 8,
			       "tensor '%.*s': \"data_offsets\" is not "
			       "[BEGIN, END] with 0 <= BEGIN <= END",
			       nl, e->name);
	if (!ckpt_shape_bytes(e->dt, dims, ndims, &need))
		return corrupt(s, 8,
			       "tensor '%.*s': its shape's byte count "
			       "overflows or is not a whole number of bytes",
			       nl, e->name);
	if (need != e->end - e->begin)
		return corrupt(s, s->data_start + e->begin,
			       "tensor '%.*s': %s %s needs %llu bytes, but "
			       "data_offsets [%llu, %llu] hold %llu",
			       nl, e->name, json_string_value(dt),
			       ckpt_dtype_name(e->dt), (unsigned long long)need,
			       (unsigned long long)e->begin,
			       (unsigned long long)e->end,
			       (unsigned long long)(e->end - e->begin));
	return CKPT_OK;
}

/* Orders entries by their data: begin, end, then place in the JSON. */
static int by_offset(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->jpos < y->jpos ? -1 : x->jpos > y->jpos;
}

/* The sorted entries must cover the data exactly: no hole, no overlap,
 * nothing after the last. */
static ckpt_err check_cover(struct st_scan *s, const struct st_entry *e,
			    size_t n)
{
	uint64_t at = 0, data = s->f->stats.file_size - s->data_start;

	for (size_t i = 0; i < n; i++) {
		if (e[i].begin != at)
			return corrupt(
				s, s->data_start + e[i].begin,
				"tensor '%.*s' starts at data byte %llu, but "
				"the tensors before it end at %llu: %s",
				QUOTE(e[i].name_len), e[i].name,
				(unsigned long long)e[i].begin,
				(unsigned long long)at,
				e[i].begin > at ? "a hole (not allowed)"
						: "they overlap");
		at = e[i].end;
	}
	if (at > data)
		return corrupt(s, s->f->stats.file_size,
			       "the tensors need %llu data bytes but the file "
			       "holds %llu: it is truncated",
			       (unsigned long long)at,
			       (unsigned long long)data);
	if (at < data)
		return corrupt(s, s->data_start + at,
			       "%llu bytes follow the last tensor's data "
			       "(not allowed: the data must be covered "
			       "exactly)",
			       (unsigned long long)(data - at));
	return CKPT_OK;
}

/* Copies len bytes of s into the index, NUL-terminated. */
static char *index_str(struct ckpt_file *f, const char *s, size_t len)
{
	char *p = ckpt_index_alloc(f, len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* Puts tensor e into the index as one extent of the file. */
static ckpt_err put_tensor(struct st_scan *s, const struct st_entry *e)
{
	struct ckpt_param p = {0};
	struct ckpt_tensor *t = &p.tensor;
	char *fname = ckpt_name_escape(e->name, e->name_len);
	uint32_t ndims = 0;
	int64_t dims[CKPT_MAX_DIMS];
	size_t flen;
	uint8_t *blk;

	if (!fname)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	get_dims(e->shape, dims, &ndims);
	flen = strlen(fname);
	blk = ckpt_index_alloc(s->f, sizeof(struct ckpt_extent) +
					     ndims * sizeof(int64_t) +
					     e->name_len + flen + 2);
	if (!blk) {
		free(fname);
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	}
	t->extents = (struct ckpt_extent *)(void *)blk;
	t->extents[0] = (struct ckpt_extent){.pos = 0,
					     .src = s->data_start + e->begin,
					     .len = e->end - e->begin};
	t->nextents = e->end > e->begin;
	t->dims = (int64_t *)(void *)(blk + sizeof(struct ckpt_extent));
	memcpy(t->dims, dims, ndims * sizeof(int64_t));
	t->ndims = (uint8_t)ndims;
	t->dtype = e->dt;
	t->type_str = ckpt_dtype_st_name(e->dt);
	t->size = t->stored = e->end - e->begin;
	p.name = (char *)(t->dims + ndims);
	memcpy(p.name, e->name, e->name_len);
	p.name[e->name_len] = '\0';
	p.fname = p.name + e->name_len + 1;
	memcpy(p.fname, fname, flen + 1);
	free(fname);
	p.name_len = e->name_len;
	p.rec_off = s->data_start + e->begin;
	p.nslices = 1;
	p.kind = CKPT_PARAM_TENSOR;
	return ckpt_index_put(s->f, &p, s->err);
}

/* Reads __metadata__ (an object; values that are not strings are kept as
 * their compact JSON) into f->meta. */
static ckpt_err get_meta(struct st_scan *s, json_t *m)
{
	struct ckpt_file *f = s->f;
	const char *key;
	size_t klen, i = 0;
	json_t *v;

	if (json_is_null(m)) /* serde reads null as no metadata */
		return CKPT_OK;
	if (!json_is_object(m))
		return corrupt(s, 8,
			       "\"__metadata__\" is not an object (of "
			       "string values)");
	f->has_meta = true;
	f->nmeta = json_object_size(m);
	f->meta = ckpt_index_alloc(f, f->nmeta * sizeof(*f->meta) + 1);
	if (!f->meta)
		goto nomem;
	/* the index's memory is not zeroed: marker is set later */
	memset(f->meta, 0, f->nmeta * sizeof(*f->meta));
	json_object_keylen_foreach(m, key, klen, v)
	{
		struct ckpt_meta_item *it = &f->meta[i++];
		char *text = NULL;

		it->key = index_str(f, key, klen);
		it->json = !json_is_string(v);
		if (it->json)
			text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		it->value = it->json ? (text ? index_str(f, text, strlen(text))
					     : NULL)
				     : index_str(f, json_string_value(v),
						 json_string_length(v));
		if (!it->key || !it->value) /* text: the arena's */
			goto nomem;
	}
	return CKPT_OK;
nomem:
	return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
}

/* The I8 tensors the metadata marks "Int4" are Int4 ones (MindSpore
 * 2.7's qint4x2, stored as one int8 per element). */
static void apply_markers(struct ckpt_file *f)
{
	for (size_t i = 0; i < f->nmeta; i++) {
		struct ckpt_meta_item *it = &f->meta[i];
		char *fname;
		ssize_t at;

		if (it->json || strcmp(it->value, "Int4") != 0)
			continue;
		fname = ckpt_name_escape(it->key, strlen(it->key));
		at = fname ? ckpt_find(f, fname) : -1;
		free(fname);
		if (at >= 0 && f->params[at].tensor.dtype == CKPT_DT_INT8) {
			f->params[at].tensor.dtype = CKPT_DT_INT4;
			it->marker = true;
		}
	}
}

/* The entries of root (the header object) into e[], metadata into f. */
static ckpt_err get_entries(struct st_scan *s, json_t *root, struct st_entry *e,
			    size_t *n)
{
	const char *key;
	size_t klen, pos = 0;
	json_t *v;
	ckpt_err r;

	*n = 0;
	json_object_keylen_foreach(root, key, klen, v)
	{
		pos++;
		if (klen == 12 && memcmp(key, "__metadata__", 12) == 0) {
			r = get_meta(s, v);
		} else {
			e[*n] = (struct st_entry){
				.name = key, .name_len = klen, .jpos = pos};
			r = get_entry(s, &e[*n], v);
			++*n;
		}
		if (r)
			return r;
	}
	return CKPT_OK;
}

/* Validates the parsed header root and fills the index from it. */
static ckpt_err fill_index(struct st_scan *s, json_t *root)
{
	struct st_entry *e;
	size_t n = 0;
	ckpt_err r;

	if (!json_is_object(root))
		return corrupt(s, 8, "the header is JSON but not an object");
	e = calloc(json_object_size(root) + 1, sizeof(*e));
	if (!e)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	r = get_entries(s, root, e, &n);
	if (!r) {
		qsort(e, n, sizeof(*e), by_offset);
		r = check_cover(s, e, n);
	}
	for (size_t i = 0; i < n && !r; i++)
		r = put_tensor(s, &e[i]);
	free(e);
	s->f->stats.records = n;
	return r;
}

ckpt_err st_scan_header(struct ckpt_file *f, struct ckpt_error *err)
{
	struct st_scan s = {.f = f, .err = err};
	struct st_arena *arena = NULL;
	json_error_t je;
	json_t *root;
	uint64_t n = 0;
	char *buf;
	ckpt_err r = read_header(&s, &buf, &n);

	if (r)
		goto out;
	f->stats.header_size = n;
	arena = st_arena_begin();
	root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		r = corrupt(&s, 8 + (uint64_t)je.position,
			    "the header is not valid JSON: %s (header byte "
			    "%d)",
			    je.text, je.position);
		goto out;
	}
	r = fill_index(&s, root);
	if (!r)
		r = ckpt_index_build(f, err);
	if (!r)
		apply_markers(f);
out:
	st_arena_end(arena); /* the JSON tree, all of it */
	free(buf);
	return r;
}

const char *ckpt_json_version(void)
{
	return jansson_version_str();
}
