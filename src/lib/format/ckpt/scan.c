/*
 * scan.c - walk the top-level protobuf stream, record by record.
 *
 * Each top-level record is one Value (one parameter or one slice of it).
 * Only keys, lengths, names, dims and type strings are read; tensor_content
 * is recorded as an extent (offset, length) and skipped.  A record is
 * decoded here into a struct ckpt_rec_value and checked as a message
 * (required fields, the three tensors of a map); joining the slices of a
 * parameter, checking its sizes and storing it is params.c's.
 *
 * Nothing is allocated per record: the name is read into a buffer that is
 * reused (or handed to params.c with the parameter it starts).  One scan
 * runs on one thread; it must never read tensor content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

const char *ckpt_scan_at(struct ckpt_scan *s, uint64_t off, const char *name,
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

void ckpt_scan_place(struct ckpt_scan *s, uint64_t off, const char *name,
		     size_t len)
{
	s->where_off = off;
	s->place_name = name;
	s->place_len = len;
	s->place_pending = true;
}

const char *ckpt_scan_where(struct ckpt_scan *s)
{
	if (s->place_pending)
		ckpt_scan_at(s, s->where_off, s->place_name, s->place_len);
	return s->where;
}

/* "FILE: offset N" for a message about the bytes at off. */
static const char *at(struct ckpt_scan *s, uint64_t off)
{
	return ckpt_scan_at(s, off, NULL, 0);
}

/* Reads the length of a string field at *pos and points *out at its
 * bytes (valid until the next reader call), advancing *pos past them. */
static ckpt_err read_string(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			    size_t max, const char *what, const uint8_t **out,
			    size_t *out_len)
{
	uint64_t len, start = *pos;
	ckpt_err e;

	e = ckpt_reader_len(&s->r, pos, end, start, what, &len, s->err);
	if (e)
		return e;
	if (len > max)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, start,
				 "%s: %s is %llu bytes long (limit %zu)",
				 at(s, start), what, (unsigned long long)len,
				 max);
	e = ckpt_reader_get(&s->r, *pos, (size_t)len, out, s->err);
	if (e)
		return e;
	*out_len = (size_t)len;
	*pos += len;
	return CKPT_OK;
}

/* Makes b hold at least n bytes. */
static ckpt_err strbuf_room(struct ckpt_scan *s, struct ckpt_strbuf *b,
			    size_t n)
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

static void rec_tensor_reset(struct ckpt_rec_tensor *t)
{
	t->ndims = 0;
	t->has_content = false;
	t->content_off = t->content_len = 0;
	t->type[0] = '\0';
}

static ckpt_err add_dim(struct ckpt_scan *s, struct ckpt_rec_tensor *t,
			uint64_t v, uint64_t off)
{
	if (t->ndims == CKPT_MAX_DIMS)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, off,
				 "%s: more than %d dims", at(s, off),
				 CKPT_MAX_DIMS);
	t->dims[t->ndims++] = (int64_t)v;
	return CKPT_OK;
}

/* Reads dims at *pos (the field's key at kpos): one varint, or packed. */
static ckpt_err tensor_dims(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			    unsigned wt, uint64_t kpos,
			    struct ckpt_rec_tensor *t)
{
	uint64_t v, len, pend;
	ckpt_err e;

	if (wt == CKPT_WT_VARINT) {
		e = ckpt_reader_varint(&s->r, pos, end, &v, s->err);
		return e ? e : add_dim(s, t, v, kpos);
	}
	e = ckpt_reader_len(&s->r, pos, end, kpos, "packed dims field", &len,
			    s->err);
	for (pend = *pos + len; !e && *pos < pend;) {
		e = ckpt_reader_varint(&s->r, pos, pend, &v, s->err);
		if (!e)
			e = add_dim(s, t, v, kpos);
	}
	return e;
}

/* Reads tensor_type at *pos (the field's key at kpos). */
static ckpt_err tensor_type(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			    uint64_t kpos, struct ckpt_rec_tensor *t)
{
	const uint8_t *str;
	size_t len;
	ckpt_err e;

	e = read_string(s, pos, end, CKPT_MAX_TYPE_LEN, "tensor_type", &str,
			&len);
	if (e)
		return e;
	if (memchr(str, '\0', len))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				 "%s: tensor_type contains a NUL byte",
				 at(s, kpos));
	memcpy(t->type, str, len);
	t->type[len] = '\0';
	return CKPT_OK;
}

/* Notes where tensor_content is, at *pos (the field's key at kpos), and
 * skips it. */
static ckpt_err tensor_content(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			       uint64_t kpos, struct ckpt_rec_tensor *t)
{
	uint64_t len;
	ckpt_err e;

	e = ckpt_reader_len(&s->r, pos, end, kpos, "tensor_content", &len,
			    s->err);
	if (e)
		return e;
	t->has_content = true;
	t->content_off = *pos;
	t->content_len = len;
	*pos += len;
	return CKPT_OK;
}

/* Parses a TensorProto in [pos, end) into t, merging like protobuf does. */
static ckpt_err parse_tensor(struct ckpt_scan *s, uint64_t pos, uint64_t end,
			     struct ckpt_rec_tensor *t)
{
	while (pos < end) {
		uint64_t field, kpos = pos;
		unsigned wt;
		ckpt_err e;

		e = ckpt_reader_key(&s->r, &pos, end, CKPT_PB_TENSOR, &field,
				    &wt, s->err);
		if (e)
			return e;
		if (field == CKPT_FIELD_TENSOR_DIMS &&
		    (wt == CKPT_WT_VARINT || wt == CKPT_WT_LEN))
			e = tensor_dims(s, &pos, end, wt, kpos, t);
		else if (field == CKPT_FIELD_TENSOR_TYPE && wt == CKPT_WT_LEN)
			e = tensor_type(s, &pos, end, kpos, t);
		else if (field == CKPT_FIELD_TENSOR_CONTENT &&
			 wt == CKPT_WT_LEN)
			e = tensor_content(s, &pos, end, kpos, t);
		else if (field <= CKPT_FIELD_TENSOR_CONTENT)
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: TensorProto field %u has wire type "
				      "%u",
				      at(s, kpos), (unsigned)field, wt);
		else
			e = ckpt_reader_skip(&s->r, &pos, end, wt, s->err);
		if (e)
			return e;
	}
	return CKPT_OK;
}

/* Parses a MapTensorProto in [pos, end) into the tensors of v. */
static ckpt_err parse_map(struct ckpt_scan *s, uint64_t pos, uint64_t end,
			  struct ckpt_rec_value *v)
{
	while (pos < end) {
		uint64_t field, len, kpos = pos;
		unsigned wt;
		ckpt_err e;

		e = ckpt_reader_key(&s->r, &pos, end, CKPT_PB_MAP, &field, &wt,
				    s->err);
		if (!e && field != CKPT_FIELD_MAP_TENSOR) {
			e = ckpt_reader_skip(&s->r, &pos, end, wt, s->err);
			if (e)
				return e;
			continue;
		}
		if (!e && wt != CKPT_WT_LEN)
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: MapTensorProto field 1 has wire "
				      "type %u",
				      at(s, kpos), wt);
		if (!e)
			e = ckpt_reader_len(&s->r, &pos, end, kpos,
					    "map tensor", &len, s->err);
		if (!e && v->nt == CKPT_MAP_NTENSORS)
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: map value has more than 3 tensors",
				      at(s, kpos));
		if (e)
			return e;
		rec_tensor_reset(&v->t[v->nt]);
		e = parse_tensor(s, pos, pos + len, &v->t[v->nt++]);
		if (e)
			return e;
		pos += len;
	}
	return CKPT_OK;
}

ckpt_err ckpt_scan_name(struct ckpt_scan *s, const char *name, size_t len)
{
	ckpt_err e = strbuf_room(s, &s->vname, len + 1);

	if (e)
		return e;
	memcpy(s->vname.p, name, len);
	s->vname.p[len] = '\0';
	return CKPT_OK;
}

/* Reads the tag (the parameter name) at *pos into s->vname. */
static ckpt_err value_tag(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			  struct ckpt_rec_value *v)
{
	const uint8_t *str;
	size_t n;
	ckpt_err e;

	e = read_string(s, pos, end, CKPT_NAME_MAX, "tag", &str, &n);
	if (!e)
		e = ckpt_scan_name(s, (const char *)str, n);
	if (e)
		return e;
	v->name = s->vname.p;
	v->name_len = n;
	return CKPT_OK;
}

/* Parses the tensor or maptensor field of a Value at *pos (its key at
 * kpos); a later one replaces an earlier one, as protobuf's oneof does. */
static ckpt_err value_tensor(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			     uint64_t field, uint64_t kpos,
			     struct ckpt_rec_value *v)
{
	uint64_t len;
	ckpt_err e;

	e = ckpt_reader_len(&s->r, pos, end, kpos, "tensor", &len, s->err);
	if (e)
		return e;
	if (field == CKPT_FIELD_VALUE_TENSOR) {
		if (v->kind != CKPT_PARAM_TENSOR) /* oneof switch */
			rec_tensor_reset(&v->t[0]);
		v->kind = CKPT_PARAM_TENSOR;
		v->nt = 1;
		e = parse_tensor(s, *pos, *pos + len, &v->t[0]);
	} else {
		if (v->kind != CKPT_PARAM_MAP)
			v->nt = 0;
		v->kind = CKPT_PARAM_MAP;
		e = parse_map(s, *pos, *pos + len, v);
	}
	*pos += len;
	return e;
}

/* The fields a Value requires, once all of it is read. */
static ckpt_err check_value(struct ckpt_scan *s, struct ckpt_rec_value *v)
{
	if (!v->name)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: Value has no tag (parameter name)",
				 at(s, v->off));
	if (v->kind < 0)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: Value has neither a tensor nor a map",
				 ckpt_scan_at(s, v->off, v->name, v->name_len));
	if (v->kind == CKPT_PARAM_MAP && v->nt != CKPT_MAP_NTENSORS)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: map value has %u tensors, expected 3 "
				 "(keys, values, status)",
				 ckpt_scan_at(s, v->off, v->name, v->name_len),
				 v->nt);
	for (uint32_t i = 0; i < v->nt; i++)
		if (!v->t[i].has_content)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: tensor has no tensor_content "
					 "(a required field)",
					 ckpt_scan_at(s, v->off, v->name,
						      v->name_len));
	return CKPT_OK;
}

/* Parses the Value in [pos, end) into v. */
static ckpt_err parse_value(struct ckpt_scan *s, uint64_t pos, uint64_t end,
			    struct ckpt_rec_value *v)
{
	while (pos < end) {
		uint64_t field, kpos = pos;
		unsigned wt;
		ckpt_err e;

		e = ckpt_reader_key(&s->r, &pos, end, CKPT_PB_VALUE, &field,
				    &wt, s->err);
		if (!e && field > CKPT_FIELD_VALUE_MAPTENSOR)
			e = ckpt_reader_skip(&s->r, &pos, end, wt, s->err);
		else if (!e && wt != CKPT_WT_LEN)
			e = ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				      "%s: Value field %u has wire type %u, "
				      "expected 2",
				      at(s, kpos), (unsigned)field, wt);
		else if (!e && field == CKPT_FIELD_VALUE_TAG)
			e = value_tag(s, &pos, end, v);
		else if (!e)
			e = value_tensor(s, &pos, end, field, kpos, v);
		if (e)
			return e;
	}
	return check_value(s, v);
}

/* Reads the key of the top-level field at *pos: for a Value record, sets
 * *value and reads its length into *len; skips any other field. */
static ckpt_err top_field(struct ckpt_scan *s, uint64_t *pos, uint64_t end,
			  bool *value, uint64_t *len)
{
	uint64_t field, kpos = *pos;
	unsigned wt;
	ckpt_err e;

	*value = false;
	e = ckpt_reader_key(&s->r, pos, end, CKPT_PB_CHECKPOINT, &field, &wt,
			    s->err);
	if (e)
		return e;
	if (field != CKPT_FIELD_CHECKPOINT_VALUE) {
		s->f->stats.unknown_fields++;
		return ckpt_reader_skip(&s->r, pos, end, wt, s->err);
	}
	if (wt != CKPT_WT_LEN)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, kpos,
				 "%s: top-level field 1 has wire type %u "
				 "instead of 2: this is not a checkpoint (a "
				 "MindSpore parallel strategy file looks like "
				 "this)",
				 at(s, kpos), wt);
	*value = true;
	return ckpt_reader_len(&s->r, pos, end, kpos, "record", len, s->err);
}

ckpt_err ckpt_scan(struct ckpt_file *f, struct ckpt_error *err)
{
	struct ckpt_scan s = {.f = f, .err = err};
	uint64_t pos = 0, end = f->stats.stream_size;
	ckpt_err e = CKPT_OK;

	s.r = (struct ckpt_reader){.fd = f->fd, .label = f->path, .size = end};
	while (pos < end) {
		uint64_t kpos = pos, len;
		struct ckpt_rec_value v;
		bool value;

		e = top_field(&s, &pos, end, &value, &len);
		if (e)
			break;
		if (!value)
			continue;
		v.off = kpos;
		v.len = pos + len - kpos;
		v.name = NULL;
		v.name_len = 0;
		v.kind = -1;
		v.nt = 0;
		e = parse_value(&s, pos, pos + len, &v);
		if (!e)
			e = ckpt_params_take(&s, &v);
		if (e)
			break;
		f->stats.records++;
		pos += len;
	}
	if (!e)
		e = ckpt_params_finish(&s);
	ckpt_params_free(&s);
	free(s.r.buf);
	if (!e)
		e = ckpt_index_build(f, err);
	return e;
}
