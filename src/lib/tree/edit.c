/*
 * edit.c - changing the bytes and the names of a tree: write, truncate,
 * create, unlink, rename; and where a new or renamed file takes its place
 * (take_place, inherit: see scratch.c for tombs).
 *
 * Owns: the checks every change starts with (ckpt_tree_writable,
 * ckpt_edit_begin: writable tree, a file entry, not a map), their messages,
 * and marking what changed (ckpt_edit_touch).
 *
 * Locking: every public function here takes t->lock for writing and holds
 * it to the end, also on failure.
 *
 * Never: leave a half-done change behind.  What can fail (allocations,
 * staging) happens before the first change to the tree; a failed write
 * or truncate leaves the entry as it was, or, when some bytes may have
 * landed, marks it changed.  A map parameter is never changed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree/tree.h"

ckpt_err ckpt_tree_writable(const struct ckpt_tree *t, struct ckpt_error *err)
{
	if (!t->ro_reason)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_READONLY, 0,
			 "the checkpoint is read-only: %s", t->ro_reason);
}

/* Takes the write lock; fails if the tree refuses changes.  The caller
 * unlocks, also on failure. */
static ckpt_err write_lock(struct ckpt_tree *t, struct ckpt_error *err)
{
	pthread_rwlock_wrlock(&t->lock);
	return ckpt_tree_writable(t, err);
}

static ckpt_err map_read_only(const char *fname, struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_PERM, 0,
			 "'%s' is a map parameter, which is read-only", fname);
}

ckpt_err ckpt_edit_begin(struct ckpt_tree *t, uint64_t id, struct entry **out,
			 struct ckpt_error *err)
{
	struct entry *e = NULL;
	int sub;
	ckpt_err r = write_lock(t, err);

	if (r)
		return r;
	e = ckpt_tree_resolve(t, id, &sub);
	if (!e)
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no such entry");
	if (e->kind != CKPT_ENTRY_FILE)
		return map_read_only(e->fname, err);
	*out = e;
	return CKPT_OK;
}

void ckpt_edit_touch(struct ckpt_tree *t, struct entry *e)
{
	e->mtime_ns = ckpt_now_ns();
	if (!e->scratch)
		t->dirty = true;
}

/* ---- bytes -------------------------------------------------------------- */

/* e's bytes changed. */
static void data_changed(struct ckpt_tree *t, struct entry *e)
{
	e->data_changed = true;
	ckpt_edit_touch(t, e);
}

/* Drops a staging file that the failed operation itself created, so the
 * entry reads as before the operation. */
static void unstage_fresh(struct entry *e, bool fresh)
{
	if (fresh)
		ckpt_unstage(e);
}

/* Writes buf to bytes [off, off+size) of staged e, slice by slice. */
static int staged_pwrite(const struct entry *e, const void *buf, size_t size,
			 uint64_t off)
{
	const uint8_t *b = buf;
	uint64_t run;

	while (size) {
		uint64_t pos = ckpt_stage_pos(e, off, &run);
		size_t n = run < size ? (size_t)run : size;
		if (ckpt_pwrite_full(e->stage_fd, b, n, pos) < 0)
			return -1;
		b += n;
		off += n;
		size -= n;
	}
	return 0;
}

ckpt_err ckpt_tree_write(struct ckpt_tree *t, uint64_t id, const void *buf,
			 size_t size, uint64_t off, struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = CKPT_ERR_IO;
	bool fresh;

	r = ckpt_edit_begin(t, id, &e, err);
	if (r)
		goto out;
	fresh = e->stage_fd < 0;
	r = ckpt_stage(t, e, !(off == 0 && size >= e->size), err);
	if (r)
		goto out;
	if (staged_pwrite(e, buf, size, off) < 0) {
		r = ckpt_fail(err, CKPT_ERR_IO, off,
			      "writing '%s' to its staging file: %s", e->fname,
			      strerror(errno));
		if (fresh) {
			unstage_fresh(e, fresh);
		} else { /* some bytes may have landed: it changed */
			struct stat st;
			uint64_t landed;
			if (fstat(e->stage_fd, &st) == 0 &&
			    (landed = ckpt_stage_size_at(
				     e, (uint64_t)st.st_size)) > e->size)
				e->size = landed;
			data_changed(t, e);
		}
		goto out;
	}
	if (off + size > e->size)
		e->size = off + size;
	data_changed(t, e);
	r = CKPT_OK;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_truncate(struct ckpt_tree *t, uint64_t id, uint64_t size,
			    struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = ckpt_edit_begin(t, id, &e, err);

	if (r || size == e->size)
		goto out;
	r = ckpt_stage_resize(t, e, size, err);
	if (r)
		goto out;
	e->size = size;
	data_changed(t, e);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* ---- names -------------------------------------------------------------- */

/* Checks that fname is a name we can store in a new entry of t (protobuf
 * strings are UTF-8; the format may reserve one); returns the raw name. */
static ckpt_err parse_fname(const struct ckpt_tree *t, const char *fname,
			    char **name, size_t *len, struct ckpt_error *err)
{
	const char *why = NULL;
	ckpt_err r = ckpt_name_unescape(fname, name, len);

	if (r == CKPT_ERR_INVAL)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' is not a valid name: write '%%' as "
				 "%%25 and '/' as %%2F",
				 fname);
	if (r)
		return ckpt_fail(err, r, 0, "out of memory");
	if (!ckpt_utf8_valid(*name, *len)) {
		free(*name);
		*name = NULL;
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' is not valid UTF-8, which a checkpoint "
				 "name must be (MindSpore stores names as "
				 "protobuf strings)",
				 fname);
	}
	if (t->format->name_refused)
		why = t->format->name_refused(*name, *len);
	if (why) {
		free(*name);
		*name = NULL;
		return ckpt_fail(
			err, CKPT_ERR_INVAL, 0,
			"'%s' cannot name a tensor of a %s file: it %s", fname,
			t->format->name, why);
	}
	return CKPT_OK;
}

/* A new file e without a dtype/shape of its own takes those of the
 * parameter it replaces (shown while its bytes fit them). */
static void inherit(struct entry *e, ckpt_dtype dt, const int64_t *dims,
		    uint32_t ndims, bool shape_explicit)
{
	if (e->dtype_set || e->shape_explicit || e->kind != CKPT_ENTRY_FILE ||
	    ckpt_entry_set_dims(e, dims, ndims))
		return;
	e->dtype = (uint8_t)dt;
	e->shape_explicit = shape_explicit;
	e->inherited = true;
}

/* Where a new file named fname goes: the place of the parameter a tomb
 * remembers under that name (whose dtype/shape it inherits), else the
 * end. */
static size_t place_of_new(struct ckpt_tree *t, struct entry *e)
{
	struct tomb *tb = ckpt_tomb_find(t, e->fname);
	size_t pos = t->norder;

	if (tb) {
		inherit(e, tb->dtype, tb->dims, tb->ndims, tb->shape_explicit);
		pos = tb->pos;
		ckpt_tomb_drop(t, tb);
	}
	return pos;
}

ckpt_err ckpt_tree_create(struct ckpt_tree *t, const char *fname, uint64_t *id,
			  struct ckpt_error *err)
{
	char *name = NULL;
	struct entry *e = NULL;
	size_t len;
	ckpt_err r = write_lock(t, err);

	if (r)
		goto out;
	r = parse_fname(t, fname, &name, &len, err);
	if (r)
		goto out;
	e = ckpt_tree_find(t, fname);
	if (e) {
		r = e->hidden ? ckpt_select_taken(e, err)
			      : ckpt_fail(err, CKPT_ERR_EXISTS, 0,
					  "'%s' exists", fname);
		e = NULL;
		goto out;
	}
	e = ckpt_entry_new(t, NULL, err);
	if (!e) {
		r = CKPT_ERR_NOMEM;
		goto out;
	}
	e->kind = CKPT_ENTRY_FILE;
	e->dtype = CKPT_DT_UINT8;
	if (ckpt_entry_set_name(e, name, len) ||
	    ckpt_entry_set_dims(e, NULL, 0)) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	/* a name that was a parameter stays one (rm .x; cp y .x) */
	e->scratch = !ckpt_tomb_find(t, fname) && ckpt_scratch_match(t, e);
	r = ckpt_entry_link_at(
		t, e, e->scratch ? t->norder : place_of_new(t, e), err);
	if (r)
		goto fail;
	ckpt_entry_count_lookup(e); /* the one the caller hands out */
	data_changed(t, e);
	*id = ENTRY_ID(e);
	goto out;
fail:
	ckpt_entry_drop(t, e); /* no lookup counted yet: freed */
out:
	free(name);
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_unlink(struct ckpt_tree *t, const char *fname,
			  struct ckpt_error *err)
{
	ckpt_err r = write_lock(t, err);
	struct entry *e = NULL;

	if (r)
		goto out;
	e = ckpt_tree_find(t, fname);
	if (!e || e->hidden)
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no '%s'", fname);
	else if (e->kind != CKPT_ENTRY_FILE)
		r = map_read_only(fname, err);
	if (r)
		goto out;
	ckpt_tomb_add(t, e, ckpt_entry_position(t, e));
	ckpt_entry_unlink(t, e);
	if (!e->scratch)
		t->dirty = true;
	ckpt_entry_drop(t, e);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Checks a rename of src over dst (may be NULL). */
static ckpt_err rename_check(const struct entry *src, const struct entry *dst,
			     const char *to, bool noreplace,
			     struct ckpt_error *err)
{
	if (src->kind != CKPT_ENTRY_FILE)
		return map_read_only(src->fname, err);
	if (dst && dst->kind != CKPT_ENTRY_FILE)
		return map_read_only(dst->fname, err);
	if (dst && noreplace)
		return ckpt_fail(err, CKPT_ERR_EXISTS, 0, "'%s' exists", to);
	return CKPT_OK;
}

/* src, now named as dst (NULL if none), takes the place of what it
 * replaces: the live entry dst, or the parameter a tomb of that name
 * remembers; a scratch file stays where it is. */
static void take_place(struct ckpt_tree *t, struct entry *src,
		       struct entry *dst)
{
	struct entry v;
	size_t at = 0;
	bool move = false;

	if (dst) {
		if (!src->scratch) {
			ckpt_entry_view(dst, &v);
			inherit(src, v.dtype, v.dims, v.ndims,
				v.shape_explicit);
			ckpt_entry_unlink(t, src);
			at = ckpt_entry_position(t, dst);
			move = true;
		}
		ckpt_entry_unlink(t, dst);
		ckpt_entry_drop(t, dst);
	} else if (!src->scratch && ckpt_tomb_find(t, src->fname)) {
		ckpt_entry_unlink(t, src);
		at = place_of_new(t, src);
		move = true;
	}
	if (move) /* cannot fail: the hash cannot grow, src was in it */
		ckpt_entry_link_at(t, src, at, NULL);
}

/* Renames src, named from, to name (len bytes) / fname, both taken over,
 * over dst (NULL if none).  Cannot fail. */
static void rename_entry(struct ckpt_tree *t, struct entry *src,
			 struct entry *dst, const char *from, char *name,
			 size_t len, char *fname)
{
	bool was_scratch = src->scratch;

	if (!was_scratch) /* kept if it goes scratch */
		ckpt_tomb_add(t, src, ckpt_entry_position(t, src));
	ckpt_entry_rename(t, src, name, len, fname);
	src->renamed = true;
	/* replacing a parameter keeps it one, whatever the name */
	src->scratch = dst ? dst->scratch
			   : !ckpt_tomb_find(t, fname) &&
				       ckpt_scratch_match(t, src);
	if (!src->scratch) { /* it stays a parameter: no tomb needed */
		struct tomb *tb = was_scratch ? NULL : ckpt_tomb_find(t, from);
		if (tb)
			ckpt_tomb_drop(t, tb);
	}
	take_place(t, src, dst);
	if (!was_scratch || !src->scratch)
		t->dirty = true;
}

ckpt_err ckpt_tree_rename(struct ckpt_tree *t, const char *from, const char *to,
			  bool noreplace, struct ckpt_error *err)
{
	struct entry *src, *dst;
	char *name = NULL, *new_fname = NULL;
	size_t len;
	ckpt_err r = write_lock(t, err);

	if (r)
		goto out;
	src = ckpt_tree_find(t, from);
	if (!src || src->hidden) {
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no '%s'", from);
		goto out;
	}
	r = parse_fname(t, to, &name, &len, err);
	if (r)
		goto out;
	dst = ckpt_tree_find(t, to);
	if (dst == src)
		goto out;
	if (dst && dst->hidden) {
		r = ckpt_select_taken(dst, err);
		goto out;
	}
	r = rename_check(src, dst, to, noreplace, err);
	if (r)
		goto out;
	/* allocate first: a failure must leave both names as they were */
	new_fname = ckpt_name_escape(name, len);
	if (!new_fname) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto out;
	}
	rename_entry(t, src, dst, from, name, len, new_fname);
	name = NULL; /* src's now */
out:
	free(name);
	pthread_rwlock_unlock(&t->lock);
	return r;
}
