/*
 * params.c - parameters from the records scan.c decodes: slices joined,
 * sizes checked, the result stored in the index.
 *
 * Consecutive records with the same tag are joined into one parameter
 * (section 2 of the format document): their contents become the extents of
 * one tensor, the last slice's dims and type win, and the rows of map
 * slices add up.  The parameter is validated (section 3) when its last
 * slice has been seen, and stored with one ckpt_index_alloc (index.c) for
 * its name, file name, dims, extents and, for a map, its three tensors.
 *
 * The extents are gathered in buffers reused from one parameter to the
 * next.  Runs on the scan's thread, on the scan's struct ckpt_scan; it
 * must never keep a pointer into a record past ckpt_params_take.
 */
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

/* A plain tensor's place in messages: -1; a map tensor's: its index. */
enum {
	PLAIN = -1
};

static const char *const sub_paths[CKPT_MAP_NTENSORS] = {"/keys", "/values",
							 "/status"};

/* "" for a plain tensor, "/keys" etc. for a map tensor: put after a
 * ckpt_scan_where in messages. */
static const char *sub_path(int sub)
{
	return sub == PLAIN ? "" : sub_paths[sub];
}

static void rec_tensor_copy(struct ckpt_rec_tensor *d,
			    const struct ckpt_rec_tensor *t)
{
	d->ndims = t->ndims;
	d->has_content = t->has_content;
	d->content_off = t->content_off;
	d->content_len = t->content_len;
	memcpy(d->type, t->type, strlen(t->type) + 1);
	memcpy(d->dims, t->dims, t->ndims * sizeof(*t->dims));
}

/* Appends the content of rt to t, whose extents are in the buffer *ext
 * of *cap entries. */
static ckpt_err add_extent(struct ckpt_scan *s, struct ckpt_tensor *t,
			   struct ckpt_extent **ext, uint32_t *cap,
			   const struct ckpt_rec_tensor *rt)
{
	if (rt->content_len == 0)
		return CKPT_OK;
	if (t->nextents == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4;
		struct ckpt_extent *ne;
		if (*cap > UINT32_MAX / 2 / sizeof(*ne))
			return ckpt_fail(s->err, CKPT_ERR_UNSUPPORTED,
					 rt->content_off, "%s: too many slices",
					 ckpt_scan_at(s, rt->content_off, NULL,
						      0));
		ne = realloc(*ext, ncap * sizeof(*ne));
		if (!ne)
			return ckpt_fail(s->err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		*ext = ne;
		*cap = ncap;
	}
	t->extents = *ext;
	t->extents[t->nextents++] =
		(struct ckpt_extent){.pos = t->stored,
				     .src = rt->content_off,
				     .len = rt->content_len};
	t->stored += rt->content_len;
	return CKPT_OK;
}

/* Parses the tensor_type of rt: MindSpore spellings for plain tensors,
 * numpy ones too inside maps. */
static bool parse_type(struct ckpt_scan *s, const struct ckpt_rec_tensor *rt,
		       bool in_map, ckpt_dtype *dt)
{
	struct ckpt_type_memo *m = &s->types[in_map];
	size_t len = strlen(rt->type);
	bool ok;

	if (len && m->len == len && memcmp(m->type, rt->type, len) == 0) {
		*dt = m->dt; /* as the last record: the common case */
		return true;
	}
	ok = in_map ? ckpt_dtype_parse(rt->type, len, dt)
		    : ckpt_dtype_parse_stored(rt->type, len, dt);
	if (ok) {
		memcpy(m->type, rt->type, len);
		m->len = len;
		m->dt = *dt;
	}
	return ok;
}

/* Sets dtype, type_str and dims of t (map tensor sub, or PLAIN) from the
 * record rt (the last slice); they point into rt until store() copies
 * them. */
static ckpt_err set_meta(struct ckpt_scan *s, struct ckpt_tensor *t,
			 struct ckpt_rec_tensor *rt, int sub)
{
	ckpt_dtype dt;

	if (!parse_type(s, rt, sub != PLAIN, &dt))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s%s: unknown tensor_type '%s'",
				 ckpt_scan_where(s), sub_path(sub), rt->type);
	t->dtype = dt; /* a bit-field */
	t->type_str = rt->type;
	if (rt->ndims == 0)
		rt->dims[0] = 0; /* dims is never empty */
	t->dims = rt->dims;
	t->ndims = (uint8_t)rt->ndims; /* <= CKPT_MAX_DIMS */
	for (uint32_t i = 0; i < t->ndims; i++)
		if (t->dims[i] < 0)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
					 "%s%s: negative dimension %lld",
					 ckpt_scan_where(s), sub_path(sub),
					 (long long)t->dims[i]);
	return CKPT_OK;
}

static ckpt_err size_mismatch(struct ckpt_scan *s, const struct ckpt_tensor *t,
			      uint64_t need)
{
	char shape[128];

	ckpt_shape_format(t->dims, t->ndims, shape, sizeof(shape));
	return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
			 "%s: tensor_content is %llu bytes but shape %s of "
			 "%s needs %llu",
			 ckpt_scan_where(s), (unsigned long long)t->stored,
			 shape, t->type_str, (unsigned long long)need);
}

/* Validates the joined content of a plain tensor against its dims. */
static ckpt_err check_tensor(struct ckpt_scan *s, struct ckpt_tensor *t)
{
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
					 ckpt_scan_where(s),
					 (unsigned long long)t->stored);
		return CKPT_OK;
	}
	if (!ckpt_shape_bytes(t->dtype, t->dims, t->ndims, &need))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s: the product of the dims overflows",
				 ckpt_scan_where(s));
	t->size = need;
	if (t->stored == need)
		return CKPT_OK;
	if (t->dtype == CKPT_DT_BFLOAT16 && need <= UINT64_MAX / 2 &&
	    t->stored == 2 * need) {
		t->bf16_from_f32 = true;
		return CKPT_OK;
	}
	return size_mismatch(s, t, need);
}

/* Whether a tensor of dtype dt and shape dims holds n bytes. */
static bool holds(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
		  uint64_t n)
{
	uint64_t need;

	return ckpt_shape_bytes(dt, dims, ndims, &need) && need == n;
}

/* Validates map tensor i of the assembled map: its rows are the sum of
 * the slices' and all slices agreed on the rest of the shape. */
static ckpt_err check_map_tensor(struct ckpt_scan *s, struct ckpt_group *g,
				 int i)
{
	struct ckpt_tensor *t = &g->t[i];
	ckpt_err e;

	e = set_meta(s, t, &g->last[i], i);
	if (e)
		return e;
	if (t->ndims == 0)
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s%s: map tensor has no dims",
				 ckpt_scan_where(s), sub_path(i));
	t->dims[0] = (int64_t)g->rows[i];
	t->size = t->stored;
	/* slices must agree on all but dims[0] */
	if (!holds(t->dtype, t->dims, t->ndims, t->stored))
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, s->where_off,
				 "%s%s: %llu bytes in slices that disagree on "
				 "the type or the row shape",
				 ckpt_scan_where(s), sub_path(i),
				 (unsigned long long)t->stored);
	return CKPT_OK;
}

void ckpt_params_free(struct ckpt_scan *s)
{
	struct ckpt_group *g = &s->g;

	for (int i = 0; i < CKPT_MAP_NTENSORS; i++)
		free(g->ext[i]);
	free(g->name.p);
	free(s->vname.p); /* the two swap their buffers (ckpt_params_take) */
	s->vname.p = NULL;
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
		return CKPT_UNCONST(small_dims); /* never written: ckpt.h */
	if (t->ndims == 1 && t->dims[0] >= 0 && t->dims[0] < SMALL_DIMS)
		return CKPT_UNCONST(&small_dims[t->dims[0]]);
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

/* Copies t into *ts, its extents and dims at *blk and its odd type
 * spelling at *strs (both advanced). */
static void store_tensor(struct ckpt_tensor *ts, const struct ckpt_tensor *t,
			 uint8_t **blk, char **strs)
{
	int64_t *shared = shared_dims(t);

	*ts = *t;
	if (t->nextents) {
		ts->extents = (struct ckpt_extent *)(void *)*blk;
		memcpy(*blk, t->extents, t->nextents * sizeof(*t->extents));
		*blk += t->nextents * sizeof(*t->extents);
	}
	if (shared) {
		ts->dims = shared;
	} else {
		ts->dims = (int64_t *)(void *)*blk;
		memcpy(*blk, t->dims, t->ndims * sizeof(*t->dims));
		*blk += t->ndims * sizeof(*t->dims);
	}
	ts->type_str = store_type(t, strs);
}

/* Copies the name of p to strs, and its file name fname (flen bytes)
 * after it unless it is the same; returns where the strings end. */
static char *store_names(struct ckpt_param *p, const char *fname, size_t flen,
			 bool same_name, char *strs)
{
	memcpy(strs, p->name, p->name_len + 1);
	p->name = strs;
	strs += p->name_len + 1;
	if (same_name) {
		p->fname = p->name;
		return strs;
	}
	memcpy(strs, fname, flen + 1);
	p->fname = strs;
	return strs + flen + 1;
}

/* Copies the validated group into one block of the index and adds it. */
static ckpt_err store(struct ckpt_scan *s, struct ckpt_group *g)
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
	strs = store_names(&p, fname, flen, same_name, strs);
	free(fname);
	for (int i = 0; i < nt; i++)
		store_tensor(&ts[i], &g->t[i], &blk, &strs);
	return ckpt_index_put(s->f, &p, s->err);
}

ckpt_err ckpt_params_finish(struct ckpt_scan *s)
{
	struct ckpt_group *g = &s->g;
	struct ckpt_param *p = &g->p;
	ckpt_err e = CKPT_OK;

	if (!g->active)
		return CKPT_OK;
	g->active = false;
	ckpt_scan_place(s, p->rec_off, p->name, p->name_len);
	if (p->kind == CKPT_PARAM_TENSOR) {
		e = set_meta(s, &g->t[0], &g->last[0], PLAIN);
		if (!e)
			e = check_tensor(s, &g->t[0]);
	} else {
		for (int i = 0; !e && i < CKPT_MAP_NTENSORS; i++)
			e = check_map_tensor(s, g, i);
	}
	if (!e)
		e = store(s, g);
	return e;
}

/* Adds one map slice: each of its tensors must be whole by itself. */
static ckpt_err group_add_map(struct ckpt_scan *s, struct ckpt_group *g,
			      const struct ckpt_rec_value *v)
{
	ckpt_scan_place(s, v->off, v->name, v->name_len);
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++) {
		const struct ckpt_rec_tensor *rt = &v->t[i];
		ckpt_dtype dt;
		ckpt_err e;

		if (!parse_type(s, rt, true, &dt))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s%s: unknown tensor_type '%s'",
					 ckpt_scan_where(s), sub_path(i),
					 rt->type);
		if (rt->ndims == 0 ||
		    !holds(dt, rt->dims, rt->ndims, rt->content_len))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s%s: tensor_content is %llu bytes "
					 "and does not match its dims",
					 ckpt_scan_where(s), sub_path(i),
					 (unsigned long long)rt->content_len);
		if (__builtin_add_overflow(g->rows[i], (uint64_t)rt->dims[0],
					   &g->rows[i]))
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: map rows overflow",
					 ckpt_scan_where(s));
		e = add_extent(s, &g->t[i], &g->ext[i], &g->ext_cap[i], rt);
		if (e)
			return e;
		rec_tensor_copy(&g->last[i], rt);
	}
	return CKPT_OK;
}

/* Finishes the group and starts a new one with the record v. */
static ckpt_err group_start(struct ckpt_scan *s, struct ckpt_group *g,
			    const struct ckpt_rec_value *v)
{
	struct ckpt_strbuf b = g->name;
	ckpt_err e;

	e = ckpt_params_finish(s);
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
	return CKPT_OK;
}

ckpt_err ckpt_params_take(struct ckpt_scan *s, const struct ckpt_rec_value *v)
{
	struct ckpt_group *g = &s->g;
	ckpt_dtype dt;
	ckpt_err e;

	if (g->active && g->p.name_len == v->name_len &&
	    memcmp(g->p.name, v->name, v->name_len) == 0) {
		if ((int)g->p.kind != v->kind)
			return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
					 "%s: slices mix tensor and map values",
					 ckpt_scan_at(s, v->off, v->name,
						      v->name_len));
	} else {
		e = group_start(s, g, v);
		if (e)
			return e;
	}
	g->p.nslices++;
	if (g->p.rec_len || g->p.nslices == 1)
		g->p.rec_len = v->off == g->p.rec_off + g->p.rec_len
				       ? v->off + v->len - g->p.rec_off
				       : 0;
	if (v->kind == CKPT_PARAM_MAP)
		return group_add_map(s, g, v);
	if (!parse_type(s, &v->t[0], false, &dt)) /* MindSpore checks every
						   * slice */
		return ckpt_fail(s->err, CKPT_ERR_CORRUPT, v->off,
				 "%s: unknown tensor_type '%s'",
				 ckpt_scan_at(s, v->off, g->p.name,
					      g->p.name_len),
				 v->t[0].type);
	rec_tensor_copy(&g->last[0], &v->t[0]);
	return add_extent(s, &g->t[0], &g->ext[0], &g->ext_cap[0], &v->t[0]);
}
