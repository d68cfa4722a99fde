/*
 * meta.c - the dtype and shape of an entry: what is shown, what a commit
 * writes, and the edits of them (ckpt_tree_set_dtype, _set_shape,
 * _clear_shape).
 *
 * An entry's shape is explicit (its dims) or inferred (1-D: size / element
 * size).  An inherited dtype/shape (taken from the parameter a new file
 * replaced, see edit.c) is shown only while the bytes fit it, else the
 * entry shows as UInt8 with an inferred shape (ckpt_entry_view); the
 * first edit of the dtype or shape makes the shown one the entry's own.
 *
 * Locking: the public edits take t->lock for writing (ckpt_edit_begin);
 * the other functions work on one entry under whatever lock the caller
 * holds.
 *
 * Never: touch an entry's bytes or names, or accept a shape whose byte
 * count does not fit in 64 bits.
 */
#include <string.h>

#include "tree/tree.h"

/* How much of a user's malformed value a message quotes. */
#define QUOTE_MAX(len) ((int)((len) > 64 ? 64 : (len)))

void ckpt_entry_view(const struct entry *e, struct entry *view)
{
	uint64_t need;

	*view = *e;
	if (!e->inherited)
		return;
	if (e->dtype == CKPT_DT_STR ? e->size % 4 == 0 && e->size > 0
	    : !e->shape_explicit
		    ? e->size > 0 && ckpt_dtype_elems(e->dtype, e->size, &need)
		    : ckpt_shape_bytes(e->dtype, e->dims, e->ndims, &need) &&
			      need == e->size)
		return;
	view->dtype = CKPT_DT_UINT8;
	view->shape_explicit = false;
}

/* ---- ckpt_entry_dims, by kind of shape ---------------------------------- */

/* A str entry (UTF-32 code points, stored without dims). */
static bool str_dims(const struct entry *e, uint32_t *ndims, bool coerce,
		     struct ckpt_error *err)
{
	*ndims = 0;
	if (e->size % 4 == 0 && e->size > 0)
		return true;
	if (!coerce)
		ckpt_fail(err, CKPT_ERR_INVAL, 0,
			  "parameter '%s': str data is %llu bytes, not a "
			  "positive whole number of UTF-32 code points",
			  e->fname, (unsigned long long)e->size);
	return false;
}

/* An explicit shape, if it fits the size. */
static bool explicit_dims(const struct entry *e, int64_t *dims, uint32_t *ndims,
			  bool coerce, struct ckpt_error *err)
{
	char shape[128];
	uint64_t need;
	bool fits = ckpt_shape_bytes(e->dtype, e->dims, e->ndims, &need);

	if (fits && need == e->size) {
		if (e->ndims)
			memcpy(dims, e->dims, e->ndims * sizeof(*dims));
		*ndims = e->ndims;
		return true;
	}
	if (!coerce) {
		ckpt_shape_format(e->dims, e->ndims, shape, sizeof(shape));
		ckpt_fail(err, CKPT_ERR_INVAL, 0,
			  "parameter '%s': shape %s of %s needs %llu bytes but "
			  "the data is %llu bytes; write the missing data, or "
			  "fix its shape or dtype",
			  e->fname, shape, ckpt_dtype_name(e->dtype),
			  (unsigned long long)need,
			  (unsigned long long)e->size);
		ckpt_set_hint(err, CKPT_HINT_FIX_SHAPE, 0);
	}
	return false;
}

/* The inferred 1-D shape, if the size is a positive whole number of
 * elements. */
static bool inferred_dims(const struct entry *e, int64_t *dims, uint32_t *ndims,
			  bool coerce, struct ckpt_error *err)
{
	uint64_t n;

	if (e->size && ckpt_dtype_elems(e->dtype, e->size, &n)) {
		dims[0] = (int64_t)n;
		*ndims = 1;
		return true;
	}
	if (!coerce)
		ckpt_fail(err, CKPT_ERR_INVAL, 0,
			  e->size ? "parameter '%s': %llu bytes is not a "
				    "whole number of %s elements"
				  : "parameter '%s' is empty (%llu bytes): a "
				    "checkpoint cannot hold an empty %s "
				    "vector; write data into it or remove it",
			  e->fname, (unsigned long long)e->size,
			  ckpt_dtype_name(e->dtype));
	return false;
}

bool ckpt_entry_dims(const struct entry *ent, int64_t *dims, uint32_t *ndims,
		     ckpt_dtype *dt, bool coerce, struct ckpt_error *err)
{
	struct entry v;
	bool ok;

	ckpt_entry_view(ent, &v);
	*dt = v.dtype;
	if (v.dtype == CKPT_DT_STR) {
		ok = str_dims(&v, ndims, coerce, err);
	} else {
		ok = v.shape_explicit &&
		     explicit_dims(&v, dims, ndims, coerce, err);
		if (!ok && (coerce || !v.shape_explicit)) /* else refused */
			ok = inferred_dims(&v, dims, ndims, coerce, err);
	}
	if (ok || !coerce)
		return ok;
	*dt = CKPT_DT_UINT8; /* a misfit made to fit: its bytes */
	dims[0] = (int64_t)v.size;
	*ndims = 1;
	return true;
}

void ckpt_entry_pin_shape(struct entry *e)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t n;
	ckpt_dtype dt;

	if (e->kind != CKPT_ENTRY_FILE ||
	    !ckpt_entry_dims(e, dims, &n, &dt, false, NULL))
		return;
	if ((e->shape_explicit && !e->inherited) ||
	    ckpt_entry_set_dims(e, dims, n) == CKPT_OK) { /* else it stays */
		e->dtype = (uint8_t)dt;
		e->shape_explicit = e->dtype_set = true;
		e->inherited = false;
	}
}

/* ---- edits -------------------------------------------------------------- */

/* e's dtype or shape changed. */
static void meta_changed(struct ckpt_tree *t, struct entry *e)
{
	e->meta_changed = true;
	ckpt_edit_touch(t, e);
}

/* An inherited dtype/shape becomes the entry's own, as shown, before the
 * user changes it. */
static void own_view(struct entry *e)
{
	struct entry v;

	if (!e->inherited)
		return;
	ckpt_entry_view(e, &v);
	e->dtype = v.dtype;
	e->shape_explicit = v.shape_explicit;
	e->inherited = false;
}

ckpt_err ckpt_tree_set_dtype(struct ckpt_tree *t, uint64_t id,
			     const char *value, size_t len,
			     struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = ckpt_edit_begin(t, id, &e, err);
	ckpt_dtype dt;
	uint64_t need;

	while (len && (value[len - 1] == '\n' || value[len - 1] == '\0'))
		len--;
	if (r)
		goto out;
	if (!ckpt_dtype_parse(value, len, &dt)) {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "unknown dtype '%.*s' (use a MindSpore name "
			      "such as Float32, a numpy name such as "
			      "float32 or a safetensors name such as F32)",
			      QUOTE_MAX(len), value);
		goto out;
	}
	if (!t->format->holds(dt)) {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "the %s format cannot hold dtype %s",
			      t->format->name, ckpt_dtype_name(dt));
		goto out;
	}
	own_view(e);
	if (e->shape_explicit &&
	    !ckpt_shape_bytes(dt, e->dims, e->ndims, &need)) {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "parameter '%s': its shape in %s would need "
			      "more than 2^64 bytes",
			      e->fname, ckpt_dtype_name(dt));
		goto out;
	}
	e->dtype_set = true;
	if (dt != e->dtype) {
		e->dtype = (uint8_t)dt;
		meta_changed(t, e);
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Parses a shape for e; EINVAL if malformed or too big to exist. */
static ckpt_err parse_shape(const struct entry *e, const char *value,
			    size_t len, int64_t *dims, uint32_t *n,
			    struct ckpt_error *err)
{
	uint64_t need;

	if (!ckpt_shape_parse(value, len, dims, n))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "malformed shape '%.*s' (write it like "
				 "[6,1,5,5], 6,1,5,5 or [] for a scalar)",
				 QUOTE_MAX(len), value);
	if (*n == 1 && dims[0] == 0)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "shape [0] cannot be stored: MindSpore reads "
				 "dims [0] as a scalar");
	if (!ckpt_shape_bytes(e->dtype, dims, *n, &need))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "shape '%.*s' of %s would need more than "
				 "2^64 bytes",
				 QUOTE_MAX(len), value,
				 ckpt_dtype_name(e->dtype));
	return CKPT_OK;
}

ckpt_err ckpt_tree_set_shape(struct ckpt_tree *t, uint64_t id,
			     const char *value, size_t len,
			     struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = ckpt_edit_begin(t, id, &e, err);
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t n;

	if (r)
		goto out;
	own_view(e);
	r = parse_shape(e, value, len, dims, &n, err);
	if (r)
		goto out;
	if (!e->shape_explicit || n != e->ndims ||
	    (n && memcmp(dims, e->dims, n * sizeof(*dims)) != 0)) {
		if (ckpt_entry_set_dims(e, dims, n)) {
			r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
			goto out;
		}
		e->shape_explicit = true;
		meta_changed(t, e);
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_clear_shape(struct ckpt_tree *t, uint64_t id,
			       struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = ckpt_edit_begin(t, id, &e, err);

	if (!r) {
		own_view(e);
		if (e->shape_explicit) {
			e->shape_explicit = false;
			meta_changed(t, e);
		}
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}
