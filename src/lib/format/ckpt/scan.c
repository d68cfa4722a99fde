/*
 * scan.c - walk the top-level protobuf stream and build the index.
 *
 * Each top-level record is one Value (one parameter or one slice of it).
 * Only keys, lengths, names, dims and type strings are read; tensor_content
 * is recorded as an extent (offset, length) and skipped.  Consecutive
 * records with the same tag are joined into one parameter (section 2.3 of
 * the format document), and the parameter is validated when its last slice
 * has been seen.
 *
 * Nothing is allocated per record: names, extents and dims are gathered in
 * buffers that are reused from one parameter to the next, and a finished
 * parameter is stored with one ckpt_index_alloc (index.c) for its name,
 * file name, dims, extents and, for a map, its three tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

/* One TensorProto as found in one record (only the first ndims dims and
 * the type up to its NUL are meaningful). */
struct rec_tensor {
	uint32_t ndims;
	bool has_content; /* a required field */
	uint64_t content_off, content_len;
	char type[CKPT_MAX_TYPE_LEN + 1];
	int64_t dims[CKPT_MAX_DIMS];
};

/* A buffer kept from record to record. */
struct strbuf {
	char *p;
	size_t cap;
};

/* One Value record. */
struct rec_value {
	uint64_t off, len; /* the whole record, key and length included */
	char *name;        /* in the scan's vname buffer, NUL-terminated */
	size_t name_len;
	int kind; /* -1: neither tensor nor maptensor */
	struct rec_tensor t[CKPT_MAP_NTENSORS];
	uint32_t nt;
};

/* The parameter being assembled from consecutive records: p.name is in
 * the buffer name, the tensor (t[0]) or the map tensors (t[0..2]) have
 * their extents in ext[] and their dims and type in last[]. */
struct group {
	bool active;
	struct ckpt_param p;
	struct ckpt_tensor t[CKPT_MAP_NTENSORS];
	struct rec_tensor last[CKPT_MAP_NTENSORS];
	uint64_t rows[CKPT_MAP_NTENSORS]; /* map: dims[0] summed over slices */
	struct ckpt_extent *ext[CKPT_MAP_NTENSORS];
	uint32_t ext_cap[CKPT_MAP_NTENSORS];
	struct strbuf name;
};

struct scan {
	struct ckpt_file *f;
	struct ckpt_reader r;
	struct ckpt_error *err;
	/* "FILE: offset N: parameter 'X'" for messages; as long as a message,
	 * so that a long FILE does not push the offset out */
	char where[sizeof(((struct ckpt_error *)0)->msg)];
	uint64_t where_off;
	/* what where() formats into where when a message needs it */
	const char *place_name;
	size_t place_len;
	bool place_pending;
	struct strbuf vname; /* the name of the record being parsed */
	struct type_memo { /* the last known type string: [0] tensors, [1]
			    * map tensors (numpy names too) */
		char type[CKPT_MAX_TYPE_LEN];
		size_t len; /* 0: none yet (the empty type is not known) */
		ckpt_dtype dt;
	} types[2];
};

static const char *at(struct scan *s, uint64_t off, const char *name,
		      size_t len)
{
	size_t show = len > 80 ? 80 : len;

	s->where_off = off;
	s->place_pending = false;
	if (name)
		snprintf(s->where, sizeof(s->where),
			 "%s: offset %llu: parameter '%.*s%s'", s->r.label,
			 (unsigned long long)off, (int)show, name,
			 show < len ? "..." : "");
	else
		snprintf(s->where, sizeof(s->where), "%s: offset %llu",
			 s->r.label, (unsigned long long)off);
	return s->where;
}

/* Notes the parameter that the next where() names, at no cost until a
 * message needs it (this happens for every parameter). */
static void place(struct scan *s, uint64_t off, const char *name, size_t len)
{
	s->where_off = off;
	s->place_name = name;
	s->place_len = len;
	s->place_pending = true;
}

/* "FILE: offset N: parameter 'X'" of the last place() or at(). */
static const char *where(struct scan *s)
{
	if (s->place_pending)
		at(s, s->where_off, s->place_name, s->place_len);
	return s->where;
}

/* Reads the length of a string field at *pos and points *out at its
 * bytes (valid until the next reader call), advancing *pos past them. */
static ckpt_err read_string(struct scan *s, uint64_t *pos, uint64_t end,
			    size_t max, const char *what, const uint8_t **out,
			    size_t *out_len)
{
	uint64_t len, start = *pos;
	ckpt_err e;

	e = ckpt_reader_varint(&s->r, pos, end, &len, s->err);
	if (e)
		return e;
	if (len > end - *pos)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, start,
				 "%s: %s of %llu bytes runs past the end of "
				 "its message", at(s, start, NULL, 0), what,
				 (unsigned long long)len);
	if (len > max)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, start,
				 "%s: %s is %llu bytes long (limit %zu)",
				 at(s, start, NULL, 0), what,
				 (unsigned long long)len, max);
	e = ckpt_reader_get(&s->r, *pos, (size_t)len, out, s->err);
	if (e)
		return e;
	*out_len = (size_t)len;
	*pos += len;
	return CKPT_OK;
}

/* Makes b hold at least n bytes. */
static ckpt_err strbuf_room(struct scan *s, struct strbuf *b, size_t n)
{
	char *np;

	if (n <= b->cap)
		return CKPT_OK;
	np = realloc(b->p, n < 64 ? 64 : n);
	if (!np)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	b->p = np;
	b->cap = n < 64 ? 64 : n;
	return CKPT_OK;
}

static void rec_tensor_reset(struct rec_tensor *t)
{
	t->ndims = 0;
	t->has_content = false;
	t->content_off = t->content_len = 0;
	t->type[0] = '\0';
}

static void rec_tensor_copy(struct rec_tensor *d, const struct rec_tensor *t)
{
	d->ndims = t->ndims;
	d->has_content = t->has_content;
	d->content_off = t->content_off;
	d->content_len = t->content_len;
	memcpy(d->type, t->type, strlen(t->type) + 1);
	memcpy(d->dims, t->dims, t->ndims * sizeof(*t->dims));
}

static ckpt_err add_dim(struct scan *s, struct rec_tensor *t, uint64_t v,
			uint64_t off)
{
	if (t->ndims == CKPT_MAX_DIMS)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, off,
				 "%s: more than %d dims", at(s, off, NULL, 0),
				 CKPT_MAX_DIMS);
	t->dims[t->ndims++] = (int64_t)v;
	return CKPT_OK;
}

/* Parses a TensorProto in [pos, end) into t, merging like protobuf does. */
static ckpt_err parse_tensor(struct scan *s, uint64_t pos, uint64_t end,
			     struct rec_tensor *t)
{
	while (pos < end) {
		uint64_t key, v, kpos = pos;
		unsigned field, wt;
		ckpt_err e;

		e = ckpt_reader_varint(&s->r, &pos, end, &key, s->err);
		if (e)
			return e;
		field = (unsigned)(key >> 3);
		wt = key & 7;
		if (field == CKPT_FIELD_TENSOR_DIMS && wt == CKPT_WT_VARINT) {
			e = ckpt_reader_varint(&s->r, &pos, end, &v, s->err);
			if (!e)
				e = add_dim(s, t, v, kpos);
		} else if (field == CKPT_FIELD_TENSOR_DIMS &&
			   wt == CKPT_WT_LEN) { /* packed dims */
			uint64_t len;
			e = ckpt_reader_varint(&s->r, &pos, end, &len, s->err);
			if (!e && len > end - pos)
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					      "%s: packed dims run past the "
					      "end of the tensor",
					      at(s, kpos, NULL, 0));
			for (uint64_t pend = pos + len; !e && pos < pend;) {
				e = ckpt_reader_varint(&s->r, &pos, pend, &v,
						       s->err);
				if (!e)
					e = add_dim(s, t, v, kpos);
			}
		} else if (field == CKPT_FIELD_TENSOR_TYPE &&
			   wt == CKPT_WT_LEN) {
			const uint8_t *str;
			size_t len;
			e = read_string(s, &pos, end, CKPT_MAX_TYPE_LEN,
					"tensor_type", &str, &len);
			if (!e && memchr(str, '\0', len))
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					      "%s: tensor_type contains a NUL "
					      "byte", at(s, kpos, NULL, 0));
			if (!e) {
				memcpy(t->type, str, len);
				t->type[len] = '\0';
			}
		} else if (field == CKPT_FIELD_TENSOR_CONTENT &&
			   wt == CKPT_WT_LEN) {
			e = ckpt_reader_varint(&s->r, &pos, end, &v, s->err);
			if (!e && v > end - pos)
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					      "%s: tensor_content of %llu "
					      "bytes runs past the end of its "
					      "message (%llu bytes left)",
					      at(s, kpos, NULL, 0),
					      (unsigned long long)v,
					      (unsigned long long)(end - pos));
			if (!e) {
				t->has_content = true;
				t->content_off = pos;
				t->content_len = v;
				pos += v;
			}
		} else if (field >= 1 && field <= 3) {
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: TensorProto field %u has wire type "
				      "%u", at(s, kpos, NULL, 0), field, wt);
		} else if (field == 0) {
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: invalid field number 0",
				      at(s, kpos, NULL, 0));
		} else {
			e = ckpt_reader_skip(&s->r, &pos, end, wt, s->err);
		}
		if (e)
			return e;
	}
	return CKPT_OK;
}

static ckpt_err parse_map(struct scan *s, uint64_t pos, uint64_t end,
			  struct rec_value *v)
{
	while (pos < end) {
		uint64_t key, len, kpos = pos;
		ckpt_err e;

		e = ckpt_reader_varint(&s->r, &pos, end, &key, s->err);
		if (e)
			return e;
		if ((key >> 3) != CKPT_FIELD_MAP_TENSOR) {
			e = key >> 3 ? ckpt_reader_skip(&s->r, &pos, end,
							key & 7, s->err)
				     : ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
						 "%s: invalid field number 0",
						 at(s, kpos, NULL, 0));
			if (e)
				return e;
			continue;
		}
		if ((key & 7) != CKPT_WT_LEN)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: MapTensorProto field 1 has wire "
					 "type %u", at(s, kpos, NULL, 0),
					 (unsigned)(key & 7));
		e = ckpt_reader_varint(&s->r, &pos, end, &len, s->err);
		if (e)
			return e;
		if (len > end - pos)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: map tensor runs past the end of "
					 "its message", at(s, kpos, NULL, 0));
		if (v->nt == CKPT_MAP_NTENSORS)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: map value has more than 3 "
					 "tensors", at(s, kpos, NULL, 0));
		rec_tensor_reset(&v->t[v->nt]);
		e = parse_tensor(s, pos, pos + len, &v->t[v->nt++]);
		if (e)
			return e;
		pos += len;
	}
	return CKPT_OK;
}

/* Parses the Value in [pos, end) into v. */
static ckpt_err parse_value(struct scan *s, uint64_t pos, uint64_t end,
			    struct rec_value *v)
{
	bool has_tag = false;

	while (pos < end) {
		uint64_t key, len, kpos = pos;
		unsigned field, wt;
		ckpt_err e;

		e = ckpt_reader_varint(&s->r, &pos, end, &key, s->err);
		if (e)
			return e;
		field = (unsigned)(key >> 3);
		wt = key & 7;
		if (field == 0)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: invalid field number 0",
					 at(s, kpos, NULL, 0));
		if (field > 3) {
			e = ckpt_reader_skip(&s->r, &pos, end, wt, s->err);
			if (e)
				return e;
			continue;
		}
		if (wt != CKPT_WT_LEN)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: Value field %u has wire type %u, "
					 "expected 2", at(s, kpos, NULL, 0),
					 field, wt);
		if (field == CKPT_FIELD_VALUE_TAG) {
			const uint8_t *str;
			size_t n;
			e = read_string(s, &pos, end, CKPT_NAME_MAX, "tag",
					&str, &n);
			if (!e)
				e = strbuf_room(s, &s->vname, n + 1);
			if (e)
				return e;
			memcpy(s->vname.p, str, n);
			s->vname.p[n] = '\0';
			v->name = s->vname.p;
			v->name_len = n;
			has_tag = true;
			continue;
		}
		e = ckpt_reader_varint(&s->r, &pos, end, &len, s->err);
		if (e)
			return e;
		if (len > end - pos)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					 "%s: tensor of %llu bytes runs past the "
					 "end of its Value (%llu bytes left)",
					 at(s, kpos, NULL, 0),
					 (unsigned long long)len,
					 (unsigned long long)(end - pos));
		if (field == CKPT_FIELD_VALUE_TENSOR) {
			if (v->kind != CKPT_PARAM_TENSOR) /* oneof switch */
				rec_tensor_reset(&v->t[0]);
			v->kind = CKPT_PARAM_TENSOR;
			v->nt = 1;
			e = parse_tensor(s, pos, pos + len, &v->t[0]);
		} else {
			if (v->kind != CKPT_PARAM_MAP)
				v->nt = 0;
			v->kind = CKPT_PARAM_MAP;
			e = parse_map(s, pos, pos + len, v);
		}
		if (e)
			return e;
		pos += len;
	}
	if (!has_tag)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: Value has no tag (parameter name)",
				 at(s, v->off, NULL, 0));
	if (v->kind < 0)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: Value has neither a tensor nor a map",
				 at(s, v->off, v->name, v->name_len));
	if (v->kind == CKPT_PARAM_MAP && v->nt != CKPT_MAP_NTENSORS)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: map value has %u tensors, expected 3 "
				 "(keys, values, status)",
				 at(s, v->off, v->name, v->name_len), v->nt);
	for (uint32_t i = 0; i < v->nt; i++)
		if (!v->t[i].has_content)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: tensor has no tensor_content "
					 "(a required field)",
					 at(s, v->off, v->name, v->name_len));
	return CKPT_OK;
}

/* prod(dims) * esize, or false on a negative dim or overflow. */
static bool byte_count(const int64_t *dims, uint32_t ndims, size_t esize,
		       uint64_t *out)
{
	uint64_t n = esize;

	for (uint32_t i = 0; i < ndims; i++) {
		if (dims[i] < 0 ||
		    __builtin_mul_overflow(n, (uint64_t)dims[i], &n))
			return false;
	}
	*out = n;
	return true;
}

/* Appends the content of rt to t, whose extents are in the buffer *ext
 * of *cap entries. */
static ckpt_err add_extent(struct scan *s, struct ckpt_tensor *t,
			   struct ckpt_extent **ext, uint32_t *cap,
			   const struct rec_tensor *rt)
{
	if (rt->content_len == 0)
		return CKPT_OK;
	if (t->nextents == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4;
		struct ckpt_extent *ne;
		if (*cap > UINT32_MAX / 2 / sizeof(*ne))
			return ckpt_fail(s->err, CKPT_ERR_UNSUPPORTED,
					 rt->content_off,
					 "%s: too many slices",
					 at(s, rt->content_off, NULL, 0));
		ne = realloc(*ext, ncap * sizeof(*ne));
		if (!ne)
			return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		*ext = ne;
		*cap = ncap;
	}
	t->extents = *ext;
	t->extents[t->nextents++] = (struct ckpt_extent){
		.pos = t->stored, .src = rt->content_off,
		.len = rt->content_len};
	t->stored += rt->content_len;
	return CKPT_OK;
}

/* Parses the tensor_type of rt: MindSpore spellings for plain tensors,
 * numpy ones too inside maps (what is "" for a plain tensor). */
static bool parse_type(struct scan *s, const struct rec_tensor *rt,
		       const char *what, ckpt_dtype *dt)
{
	struct type_memo *m = &s->types[*what != '\0'];
	size_t len = strlen(rt->type);
	bool ok;

	if (len && m->len == len && memcmp(m->type, rt->type, len) == 0) {
		*dt = m->dt; /* as the last record: the common case */
		return true;
	}
	ok = *what ? ckpt_dtype_parse(rt->type, len, dt)
		   : ckpt_dtype_parse_stored(rt->type, len, dt);
	if (ok) {
		memcpy(m->type, rt->type, len);
		m->len = len;
		m->dt = *dt;
	}
	return ok;
}

/* Sets dtype, type_str and dims of t from the record rt (the last slice);
 * they point into rt until store() copies them. */
static ckpt_err set_meta(struct scan *s, struct ckpt_tensor *t,
			 struct rec_tensor *rt, const char *what)
{
	ckpt_dtype dt;

	if (!parse_type(s, rt, what, &dt))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s%s: unknown tensor_type '%s'", where(s),
				 what, rt->type);
	t->dtype = dt; /* a bit-field */
	t->type_str = rt->type;
	if (rt->ndims == 0)
		rt->dims[0] = 0; /* dims is never empty */
	t->dims = rt->dims;
	t->ndims = rt->ndims;
	for (uint32_t i = 0; i < t->ndims; i++)
		if (t->dims[i] < 0)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					 "%s%s: negative dimension %lld",
					 where(s), what,
					 (long long)t->dims[i]);
	return CKPT_OK;
}

static ckpt_err size_mismatch(struct scan *s, const struct ckpt_tensor *t,
			      const char *what, uint64_t need)
{
	char shape[128];

	ckpt_shape_format(t->dims, t->ndims, shape, sizeof(shape));
	return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
			 "%s%s: tensor_content is %llu bytes but shape %s of "
			 "%s needs %llu", where(s), what,
			 (unsigned long long)t->stored, shape, t->type_str,
			 (unsigned long long)need);
}

/* Validates the joined content of a plain tensor against its dims. */
static ckpt_err check_tensor(struct scan *s, struct ckpt_tensor *t)
{
	size_t esize = ckpt_dtype_size(t->dtype);
	uint64_t need;

	if (t->ndims == 1 && t->dims[0] == 0) { /* <= 2.2 scalar form */
		t->ndims = 0;
		t->dims_zero_form = true;
	}
	if (t->dtype == CKPT_DT_STR) {
		t->ndims = 0;
		t->size = t->stored;
		if (t->stored % 4 || t->stored == 0)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					 "%s: str content is %llu bytes, not "
					 "a positive whole number of UTF-32 "
					 "code points",
					 where(s),
					 (unsigned long long)t->stored);
		return CKPT_OK;
	}
	if (!byte_count(t->dims, t->ndims, esize, &need))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s: the product of the dims overflows",
				 where(s));
	t->size = need;
	if (t->stored == need)
		return CKPT_OK;
	if (t->dtype == CKPT_DT_BFLOAT16 && need <= UINT64_MAX / 2 &&
	    t->stored == 2 * need) {
		t->bf16_from_f32 = true;
		return CKPT_OK;
	}
	return size_mismatch(s, t, "", need);
}

static void group_free(struct group *g)
{
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++)
		free(g->ext[i]);
	free(g->name.p);
}

/* A type string as stored: the static name when it is the canonical
 * spelling, else a copy at *strs (advanced). */
static const char *store_type(const struct ckpt_tensor *t, char **strs)
{
	const char *canon = ckpt_dtype_name(t->dtype);
	size_t n;

	if (strcmp(t->type_str, canon) == 0)
		return canon;
	n = strlen(t->type_str) + 1;
	memcpy(*strs, t->type_str, n);
	*strs += n;
	return *strs - n;
}

/* dims of the many tiny tensors: [] and [0] .. [SMALL_DIMS - 1] */
#define SMALL_DIMS 256
#define D4(n) n, n + 1, n + 2, n + 3
#define D16(n) D4(n), D4(n + 4), D4(n + 8), D4(n + 12)
#define D64(n) D16(n), D16(n + 16), D16(n + 32), D16(n + 48)
static const int64_t small_dims[SMALL_DIMS] = {D64(0), D64(64), D64(128),
					       D64(192)};

/* The shared dims of t, or NULL if it needs its own. */
static int64_t *shared_dims(const struct ckpt_tensor *t)
{
	if (t->ndims == 0)
		return (int64_t *)small_dims; /* never written: see ckpt.h */
	if (t->ndims == 1 && t->dims[0] >= 0 && t->dims[0] < SMALL_DIMS)
		return (int64_t *)&small_dims[t->dims[0]];
	return NULL;
}

/* Bytes store() needs for t beside the struct; its odd type spelling is
 * counted in *nstr. */
static size_t tensor_room(const struct ckpt_tensor *t, size_t *nstr)
{
	size_t n = t->nextents * sizeof(struct ckpt_extent);

	if (strcmp(t->type_str, ckpt_dtype_name(t->dtype)) != 0)
		*nstr += strlen(t->type_str) + 1;
	if (!shared_dims(t))
		n += t->ndims * sizeof(int64_t);
	return n;
}

/* Copies the validated group into one block of the index and adds it. */
static ckpt_err store(struct scan *s, struct group *g)
{
	struct ckpt_param p = g->p;
	int nt = p.kind == CKPT_PARAM_MAP ? CKPT_MAP_NTENSORS : 1;
	size_t room = 0, nstr = p.name_len + 1, flen;
	char *fname = ckpt_name_escape(p.name, p.name_len), *strs;
	bool same_name;
	uint8_t *blk;
	struct ckpt_tensor *ts;

	if (!fname)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	flen = strlen(fname);
	same_name = flen == p.name_len && memcmp(fname, p.name, flen) == 0;
	if (!same_name)
		nstr += flen + 1;
	if (nt > 1)
		room += sizeof(struct ckpt_tensor) * CKPT_MAP_NTENSORS;
	for (int i = 0; i < nt; i++)
		room += tensor_room(&g->t[i], &nstr);
	blk = ckpt_index_alloc(s->f, room + nstr);
	if (!blk) {
		free(fname);
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	}
	/* [map tensors] [extents, dims of each tensor] [name, fname, types] */
	strs = (char *)blk + room;
	ts = &p.tensor;
	if (nt > 1) {
		ts = p.map = (struct ckpt_tensor *)(void *)blk;
		blk += sizeof(struct ckpt_tensor) * CKPT_MAP_NTENSORS;
	}
	memcpy(strs, p.name, p.name_len + 1);
	p.name = strs;
	strs += p.name_len + 1;
	if (same_name) {
		p.fname = p.name;
	} else {
		memcpy(strs, fname, flen + 1);
		p.fname = strs;
		strs += flen + 1;
	}
	free(fname);
	for (int i = 0; i < nt; i++) {
		const struct ckpt_tensor *t = &g->t[i];
		int64_t *shared = shared_dims(t);
		ts[i] = *t;
		if (t->nextents) {
			ts[i].extents = (struct ckpt_extent *)(void *)blk;
			memcpy(blk, t->extents,
			       t->nextents * sizeof(*t->extents));
			blk += t->nextents * sizeof(*t->extents);
		}
		if (shared) {
			ts[i].dims = shared;
		} else {
			ts[i].dims = (int64_t *)(void *)blk;
			memcpy(blk, t->dims, t->ndims * sizeof(*t->dims));
			blk += t->ndims * sizeof(*t->dims);
		}
		ts[i].type_str = store_type(t, &strs);
	}
	return ckpt_index_put(s->f, &p, s->err);
}

/* Validates the assembled parameter and moves it into the index. */
static ckpt_err group_finish(struct scan *s, struct group *g)
{
	struct ckpt_param *p = &g->p;
	ckpt_err e;

	if (!g->active)
		return CKPT_OK;
	g->active = false;
	place(s, p->rec_off, p->name, p->name_len);
	if (p->kind == CKPT_PARAM_TENSOR) {
		e = set_meta(s, &g->t[0], &g->last[0], "");
		if (!e)
			e = check_tensor(s, &g->t[0]);
	} else {
		e = CKPT_OK;
		for (int i = 0; !e && i < CKPT_MAP_NTENSORS; i++) {
			struct ckpt_tensor *t = &g->t[i];
			e = set_meta(s, t, &g->last[i], ckpt_map_names[i]);
			if (!e && t->ndims == 0)
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					      "%s/%s: map tensor has no dims",
					      where(s), ckpt_map_names[i]);
			if (!e) {
				uint64_t need;
				t->dims[0] = (int64_t)g->rows[i];
				t->size = t->stored;
				/* slices must agree on all but dims[0] */
				if (!byte_count(t->dims, t->ndims,
						ckpt_dtype_size(t->dtype), &need) ||
				    need != t->stored)
					e = ckpt_fail(s->err, CKPT_ERR_CORRUPT,
						      s->where_off,
						      "%s/%s: %llu bytes in "
						      "slices that disagree on "
						      "the type or the row "
						      "shape", where(s),
						      ckpt_map_names[i],
						      (unsigned long long)
							      t->stored);
			}
		}
	}
	if (!e)
		e = store(s, g);
	return e;
}

/* Adds one map slice: each of its tensors must be whole by itself. */
static ckpt_err group_add_map(struct scan *s, struct group *g,
			      struct rec_value *v)
{
	place(s, v->off, v->name, v->name_len);
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++) {
		const struct rec_tensor *rt = &v->t[i];
		ckpt_dtype dt;
		uint64_t need;
		ckpt_err e;

		if (!parse_type(s, rt, ckpt_map_names[i], &dt))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s/%s: unknown tensor_type '%s'",
					 where(s), ckpt_map_names[i], rt->type);
		if (rt->ndims == 0 ||
		    !byte_count(rt->dims, rt->ndims, ckpt_dtype_size(dt),
				&need) ||
		    need != rt->content_len)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s/%s: tensor_content is %llu bytes "
					 "and does not match its dims",
					 where(s), ckpt_map_names[i],
					 (unsigned long long)rt->content_len);
		if (__builtin_add_overflow(g->rows[i], (uint64_t)rt->dims[0],
					   &g->rows[i]))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: map rows overflow", where(s));
		e = add_extent(s, &g->t[i], &g->ext[i], &g->ext_cap[i], rt);
		if (e)
			return e;
		rec_tensor_copy(&g->last[i], rt);
	}
	return CKPT_OK;
}

/* Adds the record v to the current group or starts a new one. */
static ckpt_err take_value(struct scan *s, struct group *g,
			   struct rec_value *v)
{
	ckpt_dtype dt;
	ckpt_err e;

	if (g->active && g->p.name_len == v->name_len &&
	    memcmp(g->p.name, v->name, v->name_len) == 0) {
		if ((int)g->p.kind != v->kind)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: slices mix tensor and map values",
					 at(s, v->off, v->name, v->name_len));
	} else {
		struct strbuf b = g->name;
		e = group_finish(s, g);
		if (e)
			return e;
		g->active = true;
		g->name = s->vname; /* the name's buffer goes to the group */
		s->vname = b;
		memset(&g->p, 0, sizeof(g->p));
		memset(g->t, 0, sizeof(g->t));
		memset(g->rows, 0, sizeof(g->rows));
		g->p.name = g->name.p;
		g->p.name_len = v->name_len;
		g->p.kind = (enum ckpt_param_kind)v->kind;
		g->p.rec_off = v->off;
	}
	g->p.nslices++;
	if (g->p.rec_len || g->p.nslices == 1)
		g->p.rec_len = v->off == g->p.rec_off + g->p.rec_len
				       ? v->off + v->len - g->p.rec_off
				       : 0;
	if (v->kind == CKPT_PARAM_MAP)
		return group_add_map(s, g, v);
	if (!parse_type(s, &v->t[0], "", &dt)) /* MindSpore checks every slice */
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: unknown tensor_type '%s'",
				 at(s, v->off, g->p.name, g->p.name_len),
				 v->t[0].type);
	rec_tensor_copy(&g->last[0], &v->t[0]);
	return add_extent(s, &g->t[0], &g->ext[0], &g->ext_cap[0], &v->t[0]);
}

ckpt_err ckpt_scan(struct ckpt_file *f, struct ckpt_error *err)
{
	struct scan s = {.f = f, .err = err};
	struct group g;
	uint64_t pos = 0, end = f->stats.stream_size;
	ckpt_err e = CKPT_OK;

	memset(&g, 0, sizeof(g));
	s.r = (struct ckpt_reader){.fd = f->fd, .label = f->path, .size = end};
	while (pos < end) {
		uint64_t key, len, kpos = pos;
		struct rec_value v;

		e = ckpt_reader_varint(&s.r, &pos, end, &key, err);
		if (e)
			break;
		if ((key >> 3) != CKPT_FIELD_CHECKPOINT_VALUE) {
			f->stats.unknown_fields++;
			e = key >> 3 ? ckpt_reader_skip(&s.r, &pos, end,
							key & 7, err)
				     : ckpt_fail(err, CKPT_ERR_CORRUPT, kpos,
						 "%s: invalid field number 0: "
						 "not a checkpoint",
						 at(&s, kpos, NULL, 0));
			if (e)
				break;
			continue;
		}
		if ((key & 7) != CKPT_WT_LEN) {
			e = ckpt_fail(err, CKPT_ERR_CORRUPT, kpos,
				      "%s: top-level field 1 has wire type %u "
				      "instead of 2: this is not a checkpoint "
				      "(a MindSpore parallel strategy file "
				      "looks like this)", at(&s, kpos, NULL, 0),
				      (unsigned)(key & 7));
			break;
		}
		e = ckpt_reader_varint(&s.r, &pos, end, &len, err);
		if (e)
			break;
		if (len > end - pos) {
			e = ckpt_fail(err, CKPT_ERR_CORRUPT, kpos,
				      "%s: record of %llu bytes runs past the "
				      "end of the data (%llu bytes left): "
				      "truncated or corrupt file",
				      at(&s, kpos, NULL, 0),
				      (unsigned long long)len,
				      (unsigned long long)(end - pos));
			break;
		}
		v.off = kpos;
		v.len = pos + len - kpos;
		v.name = NULL;
		v.name_len = 0;
		v.kind = -1;
		v.nt = 0;
		e = parse_value(&s, pos, pos + len, &v);
		if (!e)
			e = take_value(&s, &g, &v);
		if (e)
			break;
		f->stats.records++;
		pos += len;
	}
	if (!e)
		e = group_finish(&s, &g);
	group_free(&g);
	free(s.vname.p);
	free(s.r.buf);
	if (!e)
		e = ckpt_index_build(f, err);
	return e;
}
