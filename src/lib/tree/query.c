/*
 * query.c - what the tree shows: listings, lookups, stat, reads.
 *
 * Owns: the public queries ckpt_tree_list, _lookup, _stat, _read_pieces
 * and _read, and how an entry is described (fill_info).
 *
 * Locking: every query takes t->lock for reading and holds it while it
 * hands out names, descriptions or pieces, so their memory and descriptors
 * stay valid during the callback.  The only change made under the read
 * lock is counting lookups (ckpt_entry_count_lookup, atomic).
 *
 * Never: change an entry (that needs the write lock, see edit.c and
 * meta.c), or call back into the tree from under the lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree/tree.h"

/* The map entry dir (not one of its tensors), or NULL. */
static struct entry *map_dir(struct ckpt_tree *t, uint64_t dir)
{
	int sub;
	struct entry *d = ckpt_tree_resolve(t, dir, &sub);

	return d && sub < 0 && d->kind == CKPT_ENTRY_DIR ? d : NULL;
}

static ckpt_err no_entry(struct ckpt_error *err, uint64_t id)
{
	return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no entry %llu",
			 (unsigned long long)id);
}

/* The map tensor of e designated by sub, or NULL. */
static const struct ckpt_tensor *map_tensor(const struct entry *e, int sub)
{
	if (sub < 0 || !e->orig || e->kind != CKPT_ENTRY_DIR)
		return NULL;
	return &e->orig->map[sub];
}

/* info of map tensor mt. */
static void fill_map_tensor(const struct ckpt_tensor *mt,
			    struct ckpt_entry_info *info)
{
	info->size = mt->size;
	snprintf(info->dtype, sizeof(info->dtype), "%s", mt->type_str);
	ckpt_shape_format(mt->dims, mt->ndims, info->shape,
			  sizeof(info->shape));
	info->shape_explicit = true;
}

/* Describes e (or its map tensor sub) as shown: see ckpt_entry_view. */
static void fill_info(const struct entry *ent, int sub,
		      struct ckpt_entry_info *info)
{
	const struct ckpt_tensor *mt = map_tensor(ent, sub);
	int64_t dims[1];
	uint32_t ndims = 0;
	struct entry v, *e = &v;

	ckpt_entry_view(ent, &v);
	memset(info, 0, sizeof(*info));
	info->mtime_ns = e->mtime_ns;
	if (e->kind == CKPT_ENTRY_DIR && !mt) {
		info->kind = CKPT_ENTRY_DIR;
		return;
	}
	info->kind = CKPT_ENTRY_FILE;
	if (mt) {
		fill_map_tensor(mt, info);
		return;
	}
	info->size = e->size;
	info->scratch = e->scratch;
	info->shape_explicit = e->shape_explicit;
	snprintf(info->dtype, sizeof(info->dtype), "%s",
		 ckpt_dtype_name(e->dtype));
	if (e->dtype == CKPT_DT_STR) {
		ndims = 0;
	} else if (e->shape_explicit) {
		ckpt_shape_format(e->dims, e->ndims, info->shape,
				  sizeof(info->shape));
		return;
	} else {
		unsigned bits = ckpt_dtype_bits(e->dtype);

		/* whole elements (a misfit shows the floor, as before) */
		dims[0] = (int64_t)(bits % 8 ? e->size / bits * 8 +
						       e->size % bits * 8 / bits
					     : e->size / (bits / 8));
		ndims = 1;
	}
	ckpt_shape_format(dims, ndims, info->shape, sizeof(info->shape));
}

void ckpt_tree_list(struct ckpt_tree *t, uint64_t dir, size_t start,
		    bool (*fn)(void *ctx, const char *name, uint64_t id,
			       const struct ckpt_entry_info *info, size_t next),
		    void *ctx, bool count)
{
	struct ckpt_entry_info info;
	struct entry *d;

	pthread_rwlock_rdlock(&t->lock);
	if (dir == 0) {
		for (size_t i = start; i < t->norder; i++) {
			struct entry *e = t->order[i];
			if (e->hidden)
				continue;
			fill_info(e, -1, &info);
			if (!fn(ctx, e->fname, ENTRY_ID(e), &info, i + 1))
				break;
			if (count)
				ckpt_entry_count_lookup(e);
		}
	} else if ((d = map_dir(t, dir))) {
		for (size_t k = start; k < CKPT_MAP_NTENSORS; k++) {
			fill_info(d, (int)k, &info);
			if (!fn(ctx, ckpt_map_names[k], dir + 1 + k, &info,
				k + 1))
				break;
		}
	}
	pthread_rwlock_unlock(&t->lock);
}

ckpt_err ckpt_tree_lookup(struct ckpt_tree *t, uint64_t dir, const char *name,
			  uint64_t *id, struct ckpt_error *err)
{
	ckpt_err r = CKPT_ERR_NOTFOUND;
	struct entry *e = NULL;

	pthread_rwlock_rdlock(&t->lock);
	if (dir == 0) {
		e = ckpt_tree_find(t, name);
		if (e && !e->hidden) {
			ckpt_entry_count_lookup(e);
			*id = ENTRY_ID(e);
			r = CKPT_OK;
		}
	} else if (map_dir(t, dir)) {
		for (int k = 0; k < CKPT_MAP_NTENSORS; k++) {
			if (strcmp(name, ckpt_map_names[k]) == 0) {
				*id = dir + 1 + (uint64_t)k;
				r = CKPT_OK;
			}
		}
	}
	pthread_rwlock_unlock(&t->lock);
	if (r)
		ckpt_fail(err, r, 0, "no such parameter: %s", name);
	return r;
}

ckpt_err ckpt_tree_stat(struct ckpt_tree *t, uint64_t id,
			struct ckpt_entry_info *info, struct ckpt_error *err)
{
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_rdlock(&t->lock);
	e = ckpt_tree_resolve(t, id, &sub);
	if (e)
		fill_info(e, sub, info);
	pthread_rwlock_unlock(&t->lock);
	if (!e)
		return no_entry(err, id);
	return CKPT_OK;
}

/* The pieces of [off, off+size) of e (or of its map tensor sub). */
static ckpt_err pieces_of(struct entry *e, int sub, uint64_t off, size_t size,
			  struct ckpt_piece **pc, uint32_t *n, void **mem,
			  struct ckpt_error *err)
{
	if (e->kind == CKPT_ENTRY_DIR && sub < 0)
		return ckpt_fail(err, CKPT_ERR_ISDIR, 0,
				 "'%s' is a map "
				 "parameter: read its tensors",
				 e->fname);
	if ((sub >= 0 || e->stage_fd < 0) && e->src &&
	    ckpt_file_changed(e->src)) /* modified underneath: not ours */
		return ckpt_fail(err, CKPT_ERR_CHANGED, off,
				 "cannot read "
				 "'%s': %s was modified underneath",
				 e->fname, ckpt_path(e->src));
	if (sub >= 0)
		return ckpt_entry_pieces(NULL, e->src, map_tensor(e, sub), off,
					 size, pc, n, mem, err);
	return ckpt_entry_pieces(e, e->src, e->orig ? &e->orig->tensor : NULL,
				 off, size, pc, n, mem, err);
}

ckpt_err ckpt_tree_read_pieces(struct ckpt_tree *t, uint64_t id, uint64_t off,
			       size_t size, ckpt_pieces_fn fn, void *ctx,
			       struct ckpt_error *err)
{
	struct ckpt_piece *pc = NULL;
	void *mem = NULL;
	struct entry *e = NULL;
	uint32_t n = 0;
	int sub;
	ckpt_err r;

	pthread_rwlock_rdlock(&t->lock);
	e = ckpt_tree_resolve(t, id, &sub);
	if (!e)
		r = no_entry(err, id);
	else
		r = pieces_of(e, sub, off, size, &pc, &n, &mem, err);
	if (!r)
		r = fn(ctx, pc, n, err);
	pthread_rwlock_unlock(&t->lock);
	free(pc);
	free(mem);
	return r;
}

struct copy_ctx {
	char *buf;
	size_t done;
};

static ckpt_err copy_pieces(void *ctx, const struct ckpt_piece *p, uint32_t n,
			    struct ckpt_error *err)
{
	struct copy_ctx *c = ctx;
	size_t k = 0;
	ckpt_err r = ckpt_pieces_copy(p, n, c->buf + c->done, &k, err);

	c->done += k;
	return r;
}

ckpt_err ckpt_tree_read(struct ckpt_tree *t, uint64_t id, void *buf,
			size_t size, uint64_t off, size_t *done,
			struct ckpt_error *err)
{
	struct copy_ctx c = {.buf = buf};
	ckpt_err r =
		ckpt_tree_read_pieces(t, id, off, size, copy_pieces, &c, err);

	*done = r ? 0 : c.done;
	return r;
}
