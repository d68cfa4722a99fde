/*
 * tree.c - the editable model of a checkpoint: entries, names, edits.
 * See ckpt_tree.h for the contract and tree_internal.h for the structures.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tree/tree.h"

/* ---- names and the hash of live root entries --------------------------- */

static struct entry **bucket(struct ckpt_tree *t, const char *fname)
{
	return &t->buckets[ckpt_hash_str(fname) & (t->nbuckets - 1)];
}

static struct entry *find(struct ckpt_tree *t, const char *fname)
{
	if (!t->nbuckets)
		return NULL;
	for (struct entry *e = *bucket(t, fname); e; e = e->hnext)
		if (strcmp(e->fname, fname) == 0)
			return e;
	return NULL;
}

static void hash_remove(struct ckpt_tree *t, struct entry *e)
{
	for (struct entry **p = bucket(t, e->fname); *p; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			e->hnext = NULL;
			return;
		}
	}
}

/* Adds e to the hash; with grow (a new entry), the table first grows to
 * keep its load factor at most 1.  Without, it cannot fail. */
static ckpt_err hash_insert(struct ckpt_tree *t, struct entry *e, bool grow,
			    struct ckpt_error *err)
{
	struct entry **b;

	if (grow && t->norder + 1 > t->nbuckets) {
		size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
		struct entry **nb = calloc(n, sizeof(*nb));
		if (!nb)
			return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		for (size_t i = 0; i < t->nbuckets; i++) {
			for (struct entry *x = t->buckets[i], *next; x;
			     x = next) {
				next = x->hnext;
				struct entry **d =
					&nb[ckpt_hash_str(x->fname) & (n - 1)];
				x->hnext = *d;
				*d = x;
			}
		}
		free(t->buckets);
		t->buckets = nb;
		t->nbuckets = n;
	}
	b = bucket(t, e->fname);
	e->hnext = *b;
	*b = e;
	return CKPT_OK;
}

/* ---- entries ------------------------------------------------------------ */

static struct entry *by_id(struct ckpt_tree *t, uint64_t id)
{
	uint64_t slot = id / CKPT_TREE_ID_STEP;

	if (slot == 0 || slot > t->nslots)
		return NULL;
	return t->slots[slot - 1];
}

/* Resolves id to a root entry, or a map entry and the index of its tensor
 * (*sub = -1 for the entry itself). */
static struct entry *resolve(struct ckpt_tree *t, uint64_t id, int *sub)
{
	struct entry *e = by_id(t, id);

	*sub = (int)(id % CKPT_TREE_ID_STEP) - 1;
	if (!e || (*sub >= 0 && e->kind != CKPT_ENTRY_DIR))
		return NULL;
	return e;
}

void ckpt_entry_free(struct entry *e)
{
	if (!e)
		return;
	if (e->stage_fd >= 0)
		close(e->stage_fd);
	if (e->own_name) {
		free(e->name);
		free(e->fname);
	}
	if (e->own_dims)
		free(e->dims);
	if (!e->in_block)
		free(e);
}

ckpt_err ckpt_entry_set_name(struct entry *e, const char *name, size_t len)
{
	char *n = malloc(len + 1), *f = ckpt_name_escape(name, len);

	if (!n || !f) {
		free(n);
		free(f);
		return CKPT_ERR_NOMEM;
	}
	memcpy(n, name, len);
	n[len] = '\0';
	if (e->own_name) {
		free(e->name);
		free(e->fname);
	}
	e->name = n;
	e->name_len = (uint32_t)len;
	e->fname = f;
	e->own_name = true;
	return CKPT_OK;
}

static ckpt_err set_dims(struct entry *e, const int64_t *dims, uint32_t n)
{
	int64_t *d = malloc((n ? n : 1) * sizeof(*d));

	if (!d)
		return CKPT_ERR_NOMEM;
	if (n)
		memcpy(d, dims, n * sizeof(*d));
	if (e->own_dims)
		free(e->dims);
	e->dims = d;
	e->ndims = (uint8_t)n;
	e->own_dims = true;
	return CKPT_OK;
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
	    set_dims(e, dims, n) == CKPT_OK) { /* else it stays as it is */
		e->dtype = dt;
		e->shape_explicit = e->dtype_set = true;
		e->inherited = false;
	}
}

void ckpt_entry_bind(struct entry *e, const struct ckpt_param *p,
		     struct ckpt_file *src)
{
	const struct ckpt_tensor *pt = &p->tensor;

	if (e->own_dims)
		free(e->dims);
	if (e->own_name) {
		free(e->name);
		free(e->fname);
	}
	e->name = p->name;
	e->name_len = (uint32_t)p->name_len;
	e->fname = p->fname;
	e->own_name = e->own_dims = false;
	e->dims = p->kind == CKPT_PARAM_TENSOR ? pt->dims : NULL;
	e->ndims = p->kind == CKPT_PARAM_TENSOR ? (uint8_t)pt->ndims : 0;
	e->orig = p;
	e->src = src;
	e->kind = p->kind == CKPT_PARAM_MAP ? CKPT_ENTRY_DIR : CKPT_ENTRY_FILE;
	e->data_changed = e->meta_changed = e->renamed = false;
	if (e->stage_fd >= 0)
		close(e->stage_fd);
	e->stage_fd = -1;
	e->shape_explicit = e->dtype_set = true;
	e->inherited = e->scratch = false;
	e->size = e->kind == CKPT_ENTRY_FILE ? pt->size : 0;
	e->dtype = pt->dtype;
}

/* Room for one more id: a freed slot, or a new one at the end. */
static ckpt_err grow_arrays(struct ckpt_tree *t, struct ckpt_error *err)
{
	if (!t->nfree && t->nslots == t->slots_cap) {
		size_t n = t->slots_cap ? t->slots_cap * 2 : 64;
		struct entry **ns = realloc(t->slots, n * sizeof(*ns));
		if (!ns)
			goto nomem;
		t->slots = ns;
		t->slots_cap = n;
	}
	if (t->norder == t->order_cap) {
		size_t n = t->order_cap ? t->order_cap * 2 : 64;
		struct entry **no = realloc(t->order, n * sizeof(*no));
		if (!no)
			goto nomem;
		t->order = no;
		t->order_cap = n;
	}
	return CKPT_OK;
nomem:
	return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
}

struct entry *ckpt_entry_new(struct ckpt_tree *t, struct entry *mem,
			     struct ckpt_error *err)
{
	struct entry *e;
	size_t slot;

	if (grow_arrays(t, err))
		return NULL;
	e = mem ? mem : calloc(1, sizeof(*e));
	if (!e) {
		ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		return NULL;
	}
	e->in_block = mem != NULL;
	e->stage_fd = -1;
	slot = t->nfree ? t->free_slots[--t->nfree] : t->nslots++;
	t->slots[slot] = e;
	e->slot = (uint32_t)slot;
	return e;
}

void ckpt_tree_reserve(struct ckpt_tree *t, size_t n)
{
	size_t want = t->nslots + n, nb = 64;
	struct entry **p;

	if (want > t->slots_cap && (p = realloc(t->slots, want * sizeof(*p)))) {
		t->slots = p;
		t->slots_cap = want;
	}
	want = t->norder + n;
	if (want > t->order_cap && (p = realloc(t->order, want * sizeof(*p)))) {
		t->order = p;
		t->order_cap = want;
	}
	while (nb < want)
		nb *= 2;
	if (!t->nbuckets && (p = calloc(nb, sizeof(*p)))) {
		t->buckets = p;
		t->nbuckets = nb;
	}
}

/* Frees e, which nobody can reach any more (deleted, no lookups left),
 * and gives its id back. */
static void entry_release(struct ckpt_tree *t, struct entry *e)
{
	size_t slot = e->slot;

	if (t->nfree == t->free_cap) {
		size_t n = t->free_cap ? t->free_cap * 2 : 64;
		size_t *nf = realloc(t->free_slots, n * sizeof(*nf));
		if (!nf) { /* keep the slot: only its id is lost */
			e->orig = NULL;
			e->src = NULL;
			if (e->stage_fd >= 0)
				close(e->stage_fd);
			e->stage_fd = -1;
			ckpt_tree_release_retired(t);
			return;
		}
		t->free_slots = nf;
		t->free_cap = n;
	}
	struct ckpt_file *src = e->src;

	t->slots[slot] = NULL;
	t->free_slots[t->nfree++] = slot;
	ckpt_entry_free(e);
	if (src && src != t->base) /* maybe the last user of a retired one */
		ckpt_tree_release_retired(t);
}

/* Inserts e into the order at pos (clipped) and into the hash. */
static ckpt_err entry_link_at(struct ckpt_tree *t, struct entry *e,
			      size_t pos, struct ckpt_error *err)
{
	ckpt_err r = hash_insert(t, e, true, err);

	if (r)
		return r;
	if (pos > t->norder)
		pos = t->norder;
	ckpt_tombs_shift(t, pos, +1);
	memmove(&t->order[pos + 1], &t->order[pos],
		(t->norder - pos) * sizeof(*t->order));
	t->order[pos] = e;
	t->norder++;
	e->live = true;
	return CKPT_OK;
}

ckpt_err ckpt_entry_link(struct ckpt_tree *t, struct entry *e,
			 struct ckpt_error *err)
{
	return entry_link_at(t, e, t->norder, err);
}

/* Position of live entry e in the order. */
static size_t position(const struct ckpt_tree *t, const struct entry *e)
{
	size_t i = 0;

	while (i < t->norder && t->order[i] != e)
		i++;
	return i;
}

static void entry_unlink(struct ckpt_tree *t, struct entry *e)
{
	size_t i = position(t, e);

	if (i < t->norder) {
		memmove(&t->order[i], &t->order[i + 1],
			(t->norder - i - 1) * sizeof(*t->order));
		t->norder--;
		ckpt_tombs_shift(t, i, -1);
	}
	hash_remove(t, e);
	e->live = false;
}

/* After e left the order: frees it now if the kernel holds no lookup. */
static void entry_drop(struct ckpt_tree *t, struct entry *e)
{
	if (!__atomic_load_n(&e->nlookup, __ATOMIC_RELAXED))
		entry_release(t, e);
}

bool ckpt_tree_dirty(struct ckpt_tree *t)
{
	bool d;

	pthread_rwlock_rdlock(&t->lock);
	d = t->dirty;
	pthread_rwlock_unlock(&t->lock);
	return d;
}

void ckpt_tree_mark_dirty(struct ckpt_tree *t)
{
	pthread_rwlock_wrlock(&t->lock);
	t->dirty = true;
	pthread_rwlock_unlock(&t->lock);
}

size_t ckpt_tree_count(struct ckpt_tree *t)
{
	size_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->norder;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

/* One more lookup of e by the kernel (under the read lock).  A count
 * that would wrap sticks at its maximum: the entry is then never freed,
 * which is safe; a wrong count reaching zero would not be. */
static void count_lookup(struct entry *e)
{
	if (__atomic_add_fetch(&e->nlookup, 1, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&e->nlookup, UINT32_MAX, __ATOMIC_RELAXED);
}

/* ---- queries ------------------------------------------------------------ */

static void fill_info(const struct entry *e, int sub,
		      struct ckpt_entry_info *info);

void ckpt_tree_list(struct ckpt_tree *t, uint64_t dir, size_t start,
		    bool (*fn)(void *ctx, const char *name, uint64_t id,
			       const struct ckpt_entry_info *info,
			       size_t next),
		    void *ctx, bool count)
{
	struct ckpt_entry_info info;
	struct entry *d;
	int sub;

	pthread_rwlock_rdlock(&t->lock);
	if (dir == 0) {
		for (size_t i = start; i < t->norder; i++) {
			struct entry *e = t->order[i];
			fill_info(e, -1, &info);
			if (!fn(ctx, e->fname, ENTRY_ID(e), &info, i + 1))
				break;
			if (count)
				count_lookup(e);
		}
	} else if ((d = resolve(t, dir, &sub)) && sub < 0 &&
		   d->kind == CKPT_ENTRY_DIR) {
		for (size_t k = start; k < CKPT_MAP_NTENSORS; k++) {
			fill_info(d, (int)k, &info);
			if (!fn(ctx, ckpt_map_names[k], dir + 1 + k, &info,
				k + 1))
				break;
		}
	}
	pthread_rwlock_unlock(&t->lock);
}

ckpt_err ckpt_tree_lookup(struct ckpt_tree *t, uint64_t dir,
			  const char *name, uint64_t *id,
			  struct ckpt_error *err)
{
	ckpt_err r = CKPT_ERR_NOTFOUND;
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_rdlock(&t->lock);
	if (dir == 0) {
		e = find(t, name);
		if (e) {
			count_lookup(e);
			*id = ENTRY_ID(e);
			r = CKPT_OK;
		}
	} else if ((e = resolve(t, dir, &sub)) && sub < 0 &&
		   e->kind == CKPT_ENTRY_DIR) {
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

/* The map tensor of e designated by sub, or NULL. */
static const struct ckpt_tensor *map_tensor(const struct entry *e, int sub)
{
	if (sub < 0 || !e->orig || e->kind != CKPT_ENTRY_DIR)
		return NULL;
	return &e->orig->map[sub];
}

/* Bytes e's dtype and explicit shape need; false on overflow. */
static bool shape_bytes(ckpt_dtype dt, const int64_t *dims, uint32_t n,
			uint64_t *need)
{
	*need = ckpt_dtype_size(dt);
	for (uint32_t i = 0; i < n; i++)
		if (__builtin_mul_overflow(*need, (uint64_t)dims[i], need))
			return false;
	return true;
}

void ckpt_entry_view(const struct entry *e, struct entry *view)
{
	uint64_t need;

	*view = *e;
	if (!e->inherited)
		return;
	if (e->dtype == CKPT_DT_STR ? e->size % 4 == 0 && e->size > 0
	    : !e->shape_explicit
		    ? e->size > 0 && e->size % ckpt_dtype_size(e->dtype) == 0
		    : shape_bytes(e->dtype, e->dims, e->ndims, &need) &&
			      need == e->size)
		return;
	view->dtype = CKPT_DT_UINT8;
	view->shape_explicit = false;
}

bool ckpt_entry_dims(const struct entry *ent, int64_t *dims, uint32_t *ndims,
		     ckpt_dtype *dt, bool coerce, struct ckpt_error *err)
{
	struct entry v, *e = &v;
	size_t esize;
	uint64_t need;
	char shape[128];

	ckpt_entry_view(ent, &v);
	esize = ckpt_dtype_size(e->dtype);
	*dt = e->dtype;
	if (e->dtype == CKPT_DT_STR) {
		*ndims = 0;
		if (e->size % 4 == 0 && e->size > 0)
			return true;
		if (!coerce) {
			ckpt_fail(err, CKPT_ERR_INVAL, 0,
				  "parameter '%s': str data is %llu bytes, "
				  "not a positive whole number of UTF-32 code "
				  "points",
				  e->fname, (unsigned long long)e->size);
			return false;
		}
		goto as_bytes;
	}
	if (e->shape_explicit) {
		bool fits = shape_bytes(e->dtype, e->dims, e->ndims, &need);
		if (fits && need == e->size) {
			if (e->ndims)
				memcpy(dims, e->dims, e->ndims * sizeof(*dims));
			*ndims = e->ndims;
			return true;
		}
		if (!coerce) {
			ckpt_shape_format(e->dims, e->ndims, shape,
					  sizeof(shape));
			ckpt_fail(err, CKPT_ERR_INVAL, 0,
				  "parameter '%s': shape %s of %s needs %llu "
				  "bytes but the data is %llu bytes; write "
				  "the missing data, or fix its shape or dtype",
				  e->fname, shape, ckpt_dtype_name(e->dtype),
				  (unsigned long long)need,
				  (unsigned long long)e->size);
			ckpt_set_hint(err, CKPT_HINT_FIX_SHAPE, 0);
			return false;
		}
	}
	if (e->size && e->size % esize == 0) {
		dims[0] = (int64_t)(e->size / esize);
		*ndims = 1;
		return true;
	}
	if (!coerce) {
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
as_bytes:
	*dt = CKPT_DT_UINT8;
	dims[0] = (int64_t)e->size;
	*ndims = 1;
	return true;
}

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
		info->size = mt->size;
		snprintf(info->dtype, sizeof(info->dtype), "%s", mt->type_str);
		ckpt_shape_format(mt->dims, mt->ndims, info->shape,
				  sizeof(info->shape));
		info->shape_explicit = true;
		return;
	}
	info->size = e->size;
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
		dims[0] = (int64_t)(e->size / ckpt_dtype_size(e->dtype));
		ndims = 1;
	}
	ckpt_shape_format(dims, ndims, info->shape, sizeof(info->shape));
}

ckpt_err ckpt_tree_stat(struct ckpt_tree *t, uint64_t id,
			struct ckpt_entry_info *info, struct ckpt_error *err)
{
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_rdlock(&t->lock);
	e = resolve(t, id, &sub);
	if (e)
		fill_info(e, sub, info);
	pthread_rwlock_unlock(&t->lock);
	if (!e)
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no entry %llu",
				 (unsigned long long)id);
	return CKPT_OK;
}

/* The pieces of [off, off+size) of e (or of its map tensor sub). */
static ckpt_err pieces_of(struct entry *e, int sub, uint64_t off, size_t size,
			  struct ckpt_piece **pc, uint32_t *n, void **mem,
			  struct ckpt_error *err)
{
	if (e->kind == CKPT_ENTRY_DIR && sub < 0)
		return ckpt_fail(err, CKPT_ERR_ISDIR, 0, "'%s' is a map "
				 "parameter: read its tensors", e->fname);
	if ((sub >= 0 || e->stage_fd < 0) && e->src &&
	    ckpt_file_changed(e->src)) /* modified underneath: not ours */
		return ckpt_fail(err, CKPT_ERR_CHANGED, off, "cannot read "
				 "'%s': %s was modified underneath",
				 e->fname, ckpt_path(e->src));
	if (sub >= 0)
		return ckpt_entry_pieces(NULL, e->src, map_tensor(e, sub),
					 off, size, pc, n, mem, err);
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
	e = resolve(t, id, &sub);
	if (!e)
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no entry %llu",
			      (unsigned long long)id);
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
	ckpt_err r = ckpt_tree_read_pieces(t, id, off, size, copy_pieces, &c,
					   err);

	*done = r ? 0 : c.done;
	return r;
}

/* ---- edits -------------------------------------------------------------- */

/* Takes the write lock and resolves id to a writable file entry.  The
 * caller unlocks, also on failure. */
static ckpt_err edit_begin(struct ckpt_tree *t, uint64_t id,
			   struct entry **out, struct ckpt_error *err)
{
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_wrlock(&t->lock);
	if (t->ro_reason)
		return ckpt_fail(err, CKPT_ERR_READONLY, 0,
				 "the checkpoint is read-only: %s",
				 t->ro_reason);
	e = resolve(t, id, &sub);
	if (!e)
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no such entry");
	if (e->kind != CKPT_ENTRY_FILE)
		return ckpt_fail(err, CKPT_ERR_PERM, 0,
				 "'%s' is a map parameter, which is read-only",
				 e->fname);
	*out = e;
	return CKPT_OK;
}

/* e changed: its mtime, and the tree unless e is a scratch file. */
static void touch(struct ckpt_tree *t, struct entry *e)
{
	e->mtime_ns = ckpt_now_ns();
	if (!e->scratch)
		t->dirty = true;
}

/* Drops a staging file that the failed operation itself created, so the
 * entry reads as before the operation. */
static void unstage_fresh(struct entry *e, bool fresh)
{
	if (fresh && e->stage_fd >= 0) {
		close(e->stage_fd);
		e->stage_fd = -1;
	}
}

ckpt_err ckpt_tree_write(struct ckpt_tree *t, uint64_t id, const void *buf,
			 size_t size, uint64_t off, struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = CKPT_ERR_IO;
	bool fresh;

	r = edit_begin(t, id, &e, err);
	if (r)
		goto out;
	fresh = e->stage_fd < 0;
	r = ckpt_stage(t, e, !(off == 0 && size >= e->size), err);
	if (r)
		goto out;
	if (ckpt_pwrite_full(e->stage_fd, buf, size, off) < 0) {
		r = ckpt_fail(err, CKPT_ERR_IO, off,
			  "writing '%s' to its staging file: %s", e->fname,
			  strerror(errno));
		if (fresh) {
			unstage_fresh(e, fresh);
		} else { /* some bytes may have landed: it changed */
			struct stat st;
			if (fstat(e->stage_fd, &st) == 0)
				e->size = (uint64_t)st.st_size;
			e->data_changed = true;
			touch(t, e);
		}
		goto out;
	}
	if (off + size > e->size)
		e->size = off + size;
	e->data_changed = true;
	touch(t, e);
	r = CKPT_OK;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_truncate(struct ckpt_tree *t, uint64_t id, uint64_t size,
			    struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = edit_begin(t, id, &e, err);

	if (r || size == e->size)
		goto out;
	r = ckpt_stage_resize(t, e, size, err);
	if (r)
		goto out;
	e->size = size;
	e->data_changed = true;
	touch(t, e);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Checks that fname is a name we can store in a new entry (protobuf
 * strings are UTF-8); returns the raw name. */
static ckpt_err parse_fname(const char *fname, char **name, size_t *len,
			    struct ckpt_error *err)
{
	ckpt_err r = ckpt_name_unescape(fname, name, len);

	if (r == CKPT_ERR_INVAL)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' is not a valid name: write '%%' as "
				 "%%25 and '/' as %%2F", fname);
	if (r)
		return ckpt_fail(err, r, 0, "out of memory");
	if (!ckpt_utf8_valid(*name, *len)) {
		free(*name);
		*name = NULL;
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' is not valid UTF-8, which a checkpoint "
				 "name must be (MindSpore stores names as "
				 "protobuf strings)", fname);
	}
	return CKPT_OK;
}

static ckpt_err write_lock(struct ckpt_tree *t, struct ckpt_error *err)
{
	pthread_rwlock_wrlock(&t->lock);
	if (t->ro_reason)
		return ckpt_fail(err, CKPT_ERR_READONLY, 0,
				 "the checkpoint is read-only: %s",
				 t->ro_reason);
	return CKPT_OK;
}

/* A new file e without a dtype/shape of its own takes those of the
 * parameter it replaces (shown while its bytes fit them). */
static void inherit(struct entry *e, ckpt_dtype dt, const int64_t *dims,
		    uint32_t ndims, bool shape_explicit)
{
	if (e->dtype_set || e->shape_explicit || e->kind != CKPT_ENTRY_FILE ||
	    set_dims(e, dims, ndims))
		return;
	e->dtype = dt;
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

ckpt_err ckpt_tree_create(struct ckpt_tree *t, const char *fname,
			  uint64_t *id, struct ckpt_error *err)
{
	char *name = NULL;
	struct entry *e = NULL;
	size_t len;
	ckpt_err r = write_lock(t, err);

	if (r)
		goto out;
	r = parse_fname(fname, &name, &len, err);
	if (r)
		goto out;
	if (find(t, fname)) {
		r = ckpt_fail(err, CKPT_ERR_EXISTS, 0, "'%s' exists", fname);
		goto out;
	}
	e = ckpt_entry_new(t, NULL, err);
	if (!e) {
		r = CKPT_ERR_NOMEM;
		goto out;
	}
	e->kind = CKPT_ENTRY_FILE;
	e->dtype = CKPT_DT_UINT8;
	if (ckpt_entry_set_name(e, name, len) || set_dims(e, NULL, 0)) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	/* a name that was a parameter stays one (rm .x; cp y .x) */
	e->scratch = !ckpt_tomb_find(t, fname) && ckpt_scratch_match(t, e);
	r = entry_link_at(t, e, e->scratch ? t->norder : place_of_new(t, e),
			  err);
	if (r)
		goto fail;
	e->data_changed = true;
	e->nlookup = 1;
	touch(t, e);
	*id = ENTRY_ID(e);
	goto out;
fail:
	entry_release(t, e);
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
	e = find(t, fname);
	if (!e)
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no '%s'", fname);
	else if (e->kind != CKPT_ENTRY_FILE)
		r = ckpt_fail(err, CKPT_ERR_PERM, 0,
			      "'%s' is a map parameter, which is read-only",
			      fname);
	if (r)
		goto out;
	ckpt_tomb_add(t, e, position(t, e));
	entry_unlink(t, e);
	if (!e->scratch)
		t->dirty = true;
	entry_drop(t, e);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Checks a rename of src over dst (may be NULL). */
static ckpt_err rename_check(const struct entry *src, const struct entry *dst,
			     const char *to, bool noreplace,
			     struct ckpt_error *err)
{
	if (src->kind != CKPT_ENTRY_FILE ||
	    (dst && dst->kind != CKPT_ENTRY_FILE))
		return ckpt_fail(err, CKPT_ERR_PERM, 0,
				 "map parameters are read-only");
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
			entry_unlink(t, src);
			at = position(t, dst);
			move = true;
		}
		entry_unlink(t, dst);
		entry_drop(t, dst);
	} else if (!src->scratch && ckpt_tomb_find(t, src->fname)) {
		entry_unlink(t, src);
		at = place_of_new(t, src);
		move = true;
	}
	if (move) /* cannot fail: the hash cannot grow, src was in it */
		entry_link_at(t, src, at, NULL);
}

ckpt_err ckpt_tree_rename(struct ckpt_tree *t, const char *from,
			  const char *to, bool noreplace,
			  struct ckpt_error *err)
{
	struct entry *src, *dst;
	char *name = NULL, *new_fname = NULL;
	size_t len;
	bool was_scratch;
	ckpt_err r = write_lock(t, err);

	if (r)
		goto out;
	src = find(t, from);
	if (!src) {
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no '%s'", from);
		goto out;
	}
	r = parse_fname(to, &name, &len, err);
	if (r)
		goto out;
	dst = find(t, to);
	if (dst == src)
		goto out;
	r = rename_check(src, dst, to, noreplace, err);
	if (r)
		goto out;
	/* allocate first: a failure must leave both names as they were */
	new_fname = ckpt_name_escape(name, len);
	if (!new_fname) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto out;
	}
	was_scratch = src->scratch;
	if (!was_scratch)
		ckpt_tomb_add(t, src, position(t, src)); /* kept if it goes
							   * scratch */
	hash_remove(t, src);
	if (src->own_name) {
		free(src->name);
		free(src->fname);
	}
	src->name = name;
	src->name_len = (uint32_t)len;
	src->fname = new_fname;
	src->own_name = true;
	name = NULL;
	hash_insert(t, src, false, NULL); /* one out, one in */
	src->renamed = true;
	/* replacing a parameter keeps it one, whatever the name */
	src->scratch = dst ? dst->scratch
			   : !ckpt_tomb_find(t, new_fname) &&
				     ckpt_scratch_match(t, src);
	if (!src->scratch) { /* it stays a parameter: no tomb needed */
		struct tomb *tb = was_scratch ? NULL : ckpt_tomb_find(t, from);
		if (tb)
			ckpt_tomb_drop(t, tb);
	}
	take_place(t, src, dst);
	if (!was_scratch || !src->scratch)
		t->dirty = true;
out:
	free(name);
	pthread_rwlock_unlock(&t->lock);
	return r;
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
	ckpt_err r = edit_begin(t, id, &e, err);
	ckpt_dtype dt;
	uint64_t need;

	while (len && (value[len - 1] == '\n' || value[len - 1] == '\0'))
		len--;
	if (r)
		goto out;
	if (!ckpt_dtype_parse(value, len, &dt)) {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "unknown dtype '%.*s' (use a MindSpore name "
			      "such as Float32 or a numpy name such as "
			      "float32)", (int)(len > 64 ? 64 : len), value);
		goto out;
	}
	own_view(e);
	if (e->shape_explicit && !shape_bytes(dt, e->dims, e->ndims, &need)) {
		r = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "parameter '%s': its shape in %s would need "
			      "more than 2^64 bytes", e->fname,
			      ckpt_dtype_name(dt));
		goto out;
	}
	e->dtype_set = true;
	if (dt != e->dtype) {
		e->dtype = dt;
		e->meta_changed = true;
		touch(t, e);
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
				 (int)(len > 64 ? 64 : len), value);
	if (*n == 1 && dims[0] == 0)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "shape [0] cannot be stored: MindSpore reads "
				 "dims [0] as a scalar");
	if (!shape_bytes(e->dtype, dims, *n, &need))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "shape '%.*s' of %s would need more than "
				 "2^64 bytes", (int)(len > 64 ? 64 : len),
				 value, ckpt_dtype_name(e->dtype));
	return CKPT_OK;
}

ckpt_err ckpt_tree_set_shape(struct ckpt_tree *t, uint64_t id,
			     const char *value, size_t len,
			     struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = edit_begin(t, id, &e, err);
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
		if (set_dims(e, dims, n)) {
			r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
			goto out;
		}
		e->shape_explicit = true;
		e->meta_changed = true;
		touch(t, e);
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_clear_shape(struct ckpt_tree *t, uint64_t id,
			       struct ckpt_error *err)
{
	struct entry *e = NULL;
	ckpt_err r = edit_begin(t, id, &e, err);

	if (!r) {
		own_view(e);
		if (e->shape_explicit) {
			e->shape_explicit = false;
			e->meta_changed = true;
			touch(t, e);
		}
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}

void ckpt_tree_release_retired(struct ckpt_tree *t)
{
	size_t k = 0;

	for (size_t r = 0; r < t->nretired; r++) {
		bool used = false;
		for (size_t i = 0; i < t->nslots && !used; i++)
			used = t->slots[i] && t->slots[i]->src == t->retired[r];
		if (used)
			t->retired[k++] = t->retired[r];
		else
			ckpt_close(t->retired[r]);
	}
	t->nretired = k;
}

void ckpt_tree_forget(struct ckpt_tree *t, uint64_t id, uint64_t n)
{
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_wrlock(&t->lock);
	e = resolve(t, id, &sub);
	if (e && sub < 0 && e->nlookup != UINT32_MAX) { /* see count_lookup */
		e->nlookup = e->nlookup > n ? e->nlookup - (uint32_t)n : 0;
		if (!e->live)
			entry_drop(t, e);
	}
	pthread_rwlock_unlock(&t->lock);
}
