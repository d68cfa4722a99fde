/*
 * scan.c - walk the top-level protobuf stream and build the index.
 *
 * Each top-level record is one Value (one parameter or one slice of it).
 * Only keys, lengths, names, dims and type strings are read; tensor_content
 * is recorded as an extent (offset, length) and skipped.  Consecutive
 * records with the same tag are joined into one parameter (section 2.3 of
 * the format document), and the parameter is validated when its last slice
 * has been seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_format.h"
#include "internal.h"

/* One TensorProto as found in one record. */
struct rec_tensor {
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	char type[CKPT_MAX_TYPE_LEN + 1];
	uint64_t content_off, content_len;
	bool has_content; /* a required field */
};

/* One Value record. */
struct rec_value {
	uint64_t off, len; /* the whole record, key and length included */
	char *name;
	size_t name_len;
	int kind; /* -1: neither tensor nor maptensor */
	struct rec_tensor t[CKPT_MAP_NTENSORS];
	uint32_t nt;
};

/* The parameter being assembled from consecutive records. */
struct group {
	bool active;
	struct ckpt_param p;
	struct rec_tensor last[CKPT_MAP_NTENSORS];
	uint64_t rows[CKPT_MAP_NTENSORS]; /* map: dims[0] summed over slices */
	uint32_t ext_cap[CKPT_MAP_NTENSORS];
};

struct scan {
	struct ckpt_file *f;
	struct ckpt_reader r;
	struct ckpt_error *err;
	/* "FILE: offset N: parameter 'X'" for messages; as long as a message,
	 * so that a long FILE does not push the offset out */
	char where[sizeof(((struct ckpt_error *)0)->msg)];
	uint64_t where_off;
};

static const char *at(struct scan *s, uint64_t off, const char *name,
		      size_t len)
{
	size_t show = len > 80 ? 80 : len;

	s->where_off = off;
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

static ckpt_err read_string(struct scan *s, uint64_t *pos, uint64_t end,
			    size_t max, const char *what, char **out,
			    size_t *out_len)
{
	uint64_t len, start = *pos;
	const uint8_t *p;
	char *str;
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
	e = ckpt_reader_get(&s->r, *pos, (size_t)len, &p, s->err);
	if (e)
		return e;
	str = malloc((size_t)len + 1);
	if (!str)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, start, "out of memory");
	memcpy(str, p, (size_t)len);
	str[len] = '\0';
	free(*out);
	*out = str;
	*out_len = (size_t)len;
	*pos += len;
	return CKPT_OK;
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
			char *str = NULL;
			size_t len;
			e = read_string(s, &pos, end, CKPT_MAX_TYPE_LEN,
					"tensor_type", &str, &len);
			if (!e && memchr(str, '\0', len))
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
					      "%s: tensor_type contains a NUL "
					      "byte", at(s, kpos, NULL, 0));
			if (!e)
				memcpy(t->type, str, len + 1);
			free(str);
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
			e = read_string(s, &pos, end, CKPT_NAME_MAX, "tag",
					&v->name, &v->name_len);
			if (e)
				return e;
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
				memset(v->t, 0, sizeof(v->t));
			v->kind = CKPT_PARAM_TENSOR;
			v->nt = 1;
			e = parse_tensor(s, pos, pos + len, &v->t[0]);
		} else {
			if (v->kind != CKPT_PARAM_MAP) {
				memset(v->t, 0, sizeof(v->t));
				v->nt = 0;
			}
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

static ckpt_err add_extent(struct scan *s, struct ckpt_tensor *t,
			   uint32_t *cap, const struct rec_tensor *rt)
{
	if (rt->content_len == 0)
		return CKPT_OK;
	if (t->nextents == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 1;
		struct ckpt_extent *ne =
			realloc(t->extents, ncap * sizeof(*ne));
		if (!ne)
			return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		t->extents = ne;
		*cap = ncap;
	}
	t->extents[t->nextents++] = (struct ckpt_extent){
		.pos = t->stored, .src = rt->content_off,
		.len = rt->content_len};
	t->stored += rt->content_len;
	return CKPT_OK;
}

/* Parses the tensor_type of rt: MindSpore spellings for plain tensors,
 * numpy ones too inside maps (what is "" for a plain tensor). */
static bool parse_type(const struct rec_tensor *rt, const char *what,
		       ckpt_dtype *dt)
{
	return *what ? ckpt_dtype_parse(rt->type, strlen(rt->type), dt)
		     : ckpt_dtype_parse_stored(rt->type, strlen(rt->type), dt);
}

/* Sets dtype, type_str and dims of t from the record rt (the last slice). */
static ckpt_err set_meta(struct scan *s, struct ckpt_tensor *t,
			 const struct rec_tensor *rt, const char *what)
{
	if (!parse_type(rt, what, &t->dtype))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s%s: unknown tensor_type '%s'", s->where,
				 what, rt->type);
	free(t->type_str);
	t->type_str = strdup(rt->type);
	free(t->dims);
	t->dims = malloc((rt->ndims ? rt->ndims : 1) * sizeof(int64_t));
	if (!t->type_str || !t->dims)
		return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	memcpy(t->dims, rt->dims, rt->ndims * sizeof(int64_t));
	t->ndims = rt->ndims;
	for (uint32_t i = 0; i < t->ndims; i++)
		if (t->dims[i] < 0)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					 "%s%s: negative dimension %lld",
					 s->where, what,
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
			 "%s needs %llu", s->where, what,
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
					 s->where,
					 (unsigned long long)t->stored);
		return CKPT_OK;
	}
	if (!byte_count(t->dims, t->ndims, esize, &need))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s: the product of the dims overflows",
				 s->where);
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

static void group_reset(struct group *g)
{
	ckpt_param_free(&g->p);
	memset(g, 0, sizeof(*g));
}

/* Validates the assembled parameter and moves it into the index. */
static ckpt_err group_finish(struct scan *s, struct group *g)
{
	struct ckpt_param *p = &g->p;
	ckpt_err e;

	if (!g->active)
		return CKPT_OK;
	at(s, p->rec_off, p->name, p->name_len);
	if (p->kind == CKPT_PARAM_TENSOR) {
		e = set_meta(s, &p->tensor, &g->last[0], "");
		if (!e)
			e = check_tensor(s, &p->tensor);
	} else {
		e = CKPT_OK;
		for (int i = 0; !e && i < CKPT_MAP_NTENSORS; i++) {
			struct ckpt_tensor *t = &p->map[i];
			e = set_meta(s, t, &g->last[i], ckpt_map_names[i]);
			if (!e && t->ndims == 0)
				e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					      "%s/%s: map tensor has no dims",
					      s->where, ckpt_map_names[i]);
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
						      "shape", s->where,
						      ckpt_map_names[i],
						      (unsigned long long)
							      t->stored);
			}
		}
	}
	if (!e)
		p->fname = ckpt_name_escape(p->name, p->name_len);
	if (!e && !p->fname)
		e = ckpt_fail(s->err, CKPT_ERR_NOMEM, 0, "out of memory");
	if (!e)
		e = ckpt_index_put(s->f, p, s->err);
	if (e) {
		group_reset(g);
		return e;
	}
	memset(g, 0, sizeof(*g)); /* ownership moved to the index */
	return CKPT_OK;
}

/* Adds one map slice: each of its tensors must be whole by itself. */
static ckpt_err group_add_map(struct scan *s, struct group *g,
			      struct rec_value *v)
{
	at(s, v->off, v->name, v->name_len);
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++) {
		const struct rec_tensor *rt = &v->t[i];
		ckpt_dtype dt;
		uint64_t need;
		ckpt_err e;

		if (!parse_type(rt, ckpt_map_names[i], &dt))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s/%s: unknown tensor_type '%s'",
					 s->where, ckpt_map_names[i], rt->type);
		if (rt->ndims == 0 ||
		    !byte_count(rt->dims, rt->ndims, ckpt_dtype_size(dt),
				&need) ||
		    need != rt->content_len)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s/%s: tensor_content is %llu bytes "
					 "and does not match its dims",
					 s->where, ckpt_map_names[i],
					 (unsigned long long)rt->content_len);
		if (__builtin_add_overflow(g->rows[i], (uint64_t)rt->dims[0],
					   &g->rows[i]))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: map rows overflow", s->where);
		e = add_extent(s, &g->p.map[i], &g->ext_cap[i], rt);
		if (e)
			return e;
		g->last[i] = *rt;
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
		free(v->name);
		v->name = NULL;
	} else {
		e = group_finish(s, g);
		if (e)
			return e;
		g->active = true;
		g->p.name = v->name;
		g->p.name_len = v->name_len;
		g->p.kind = (enum ckpt_param_kind)v->kind;
		g->p.rec_off = v->off;
		v->name = NULL;
	}
	g->p.nslices++;
	if (g->p.rec_len || g->p.nslices == 1)
		g->p.rec_len = v->off == g->p.rec_off + g->p.rec_len
				       ? v->off + v->len - g->p.rec_off
				       : 0;
	if (v->kind == CKPT_PARAM_MAP)
		return group_add_map(s, g, v);
	if (!parse_type(&v->t[0], "", &dt)) /* MindSpore checks every slice */
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: unknown tensor_type '%s'",
				 at(s, v->off, g->p.name, g->p.name_len),
				 v->t[0].type);
	g->last[0] = v->t[0];
	return add_extent(s, &g->p.tensor, &g->ext_cap[0], &v->t[0]);
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
		memset(&v, 0, sizeof(v));
		v.off = kpos;
		v.len = pos + len - kpos;
		v.kind = -1;
		e = parse_value(&s, pos, pos + len, &v);
		if (!e)
			e = take_value(&s, &g, &v);
		free(v.name);
		if (e)
			break;
		f->stats.records++;
		pos += len;
	}
	if (!e)
		e = group_finish(&s, &g);
	group_reset(&g);
	free(s.r.buf);
	return e;
}
