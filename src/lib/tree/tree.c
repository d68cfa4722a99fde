/*
 * tree.c - the entries of a tree and the structures that find them.
 *
 * Owns: an entry's life (new, bind, free) and the memory it owns (name,
 * dims); ids and their slots (t->slots, reused through t->free_slots only
 * once an entry is deleted and its lookups forgotten); the hash of live
 * root names (t->buckets); the order of live entries (t->order); the lookup
 * counts the kernel holds (entry->nlookup, ckpt_tree_forget); and closing
 * retired checkpoint files no entry reads from any more.
 *
 * Locking: the callers hold t->lock; the functions here never take it,
 * except the public ckpt_tree_dirty/_mark_dirty/_count/_forget.  The only
 * thing changed under the read lock is a lookup count, atomically
 * (ckpt_entry_count_lookup); everything else needs the write lock.
 *
 * Never: look at an entry's bytes, dtype or shape (query.c, meta.c), or
 * free an entry the kernel still holds a lookup of: its id would name a
 * different file while the kernel still knows the old one.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tree/tree.h"

/* ---- names and the hash of live root entries --------------------------- */

static struct entry **bucket(struct ckpt_tree *t, const char *fname)
{
	return &t->buckets[ckpt_hash_str(fname) & (t->nbuckets - 1)];
}

struct entry *ckpt_tree_find(struct ckpt_tree *t, const char *fname)
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

/* Doubles the hash table (or makes its first one). */
static ckpt_err hash_grow(struct ckpt_tree *t, struct ckpt_error *err)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
	struct entry **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct entry *x = t->buckets[i], *next; x; x = next) {
			struct entry **d =
				&nb[ckpt_hash_str(x->fname) & (n - 1)];
			next = x->hnext;
			x->hnext = *d;
			*d = x;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
	return CKPT_OK;
}

/* Adds e to the hash; with grow (a new entry), the table first grows to
 * keep its load factor at most 1.  Without, it cannot fail. */
static ckpt_err hash_insert(struct ckpt_tree *t, struct entry *e, bool grow,
			    struct ckpt_error *err)
{
	struct entry **b;

	if (grow && t->norder + 1 > t->nbuckets && hash_grow(t, err))
		return CKPT_ERR_NOMEM;
	b = bucket(t, e->fname);
	e->hnext = *b;
	*b = e;
	return CKPT_OK;
}

/* ---- entries ------------------------------------------------------------ */

struct entry *ckpt_tree_resolve(struct ckpt_tree *t, uint64_t id, int *sub)
{
	uint64_t slot = id / CKPT_TREE_ID_STEP;
	struct entry *e;

	*sub = (int)(id % CKPT_TREE_ID_STEP) - 1;
	if (slot == 0 || slot > t->nslots)
		return NULL;
	e = t->slots[slot - 1];
	if (!e || e->hidden || (*sub >= 0 && e->kind != CKPT_ENTRY_DIR))
		return NULL;
	return e;
}

/* The names e owns (none while they are borrowed from orig). */
static void free_names(struct entry *e)
{
	if (e->own_name) {
		free(e->name);
		free(e->fname);
	}
}

void ckpt_entry_free(struct entry *e)
{
	if (!e)
		return;
	if (e->stage_fd >= 0)
		close(e->stage_fd);
	free_names(e);
	if (e->own_dims)
		free(e->dims);
	if (!e->in_block)
		free(e);
}

/* Makes name (len bytes) and fname, both malloc'd, e's own names. */
static void take_names(struct entry *e, char *name, size_t len, char *fname)
{
	free_names(e);
	e->name = name;
	e->name_len = (uint32_t)len;
	e->fname = fname;
	e->own_name = true;
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
	take_names(e, n, len, f);
	return CKPT_OK;
}

void ckpt_entry_rename(struct ckpt_tree *t, struct entry *e, char *name,
		       size_t len, char *fname)
{
	hash_remove(t, e);
	take_names(e, name, len, fname);
	hash_insert(t, e, false, NULL); /* one out, one in */
}

ckpt_err ckpt_entry_set_dims(struct entry *e, const int64_t *dims, uint32_t n)
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

void ckpt_entry_bind(struct entry *e, const struct ckpt_param *p,
		     struct ckpt_file *src)
{
	const struct ckpt_tensor *pt = &p->tensor;

	if (e->own_dims)
		free(e->dims);
	free_names(e);
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
	ckpt_unstage(e);
	e->shape_explicit = e->dtype_set = true;
	e->inherited = e->scratch = false;
	e->size = e->kind == CKPT_ENTRY_FILE ? pt->size : 0;
	e->dtype = pt->dtype;
}

/* ---- ids and slots ------------------------------------------------------ */

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
	e->stage_off = 0;
	e->stage_shift = 0;
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
	struct ckpt_file *src = e->src;

	if (t->nfree == t->free_cap) {
		size_t n = t->free_cap ? t->free_cap * 2 : 64;
		size_t *nf = realloc(t->free_slots, n * sizeof(*nf));
		if (!nf) { /* keep the slot: only its id is lost */
			e->orig = NULL;
			e->src = NULL;
			ckpt_unstage(e);
			ckpt_tree_release_retired(t);
			return;
		}
		t->free_slots = nf;
		t->free_cap = n;
	}
	t->slots[slot] = NULL;
	t->free_slots[t->nfree++] = slot;
	ckpt_entry_free(e);
	if (src && src != t->base) /* maybe the last user of a retired one */
		ckpt_tree_release_retired(t);
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

/* ---- the order of live entries ------------------------------------------ */

ckpt_err ckpt_entry_link_at(struct ckpt_tree *t, struct entry *e, size_t pos,
			    struct ckpt_error *err)
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
	return ckpt_entry_link_at(t, e, t->norder, err);
}

size_t ckpt_entry_position(const struct ckpt_tree *t, const struct entry *e)
{
	size_t i = 0;

	while (i < t->norder && t->order[i] != e)
		i++;
	return i;
}

void ckpt_entry_unlink(struct ckpt_tree *t, struct entry *e)
{
	size_t i = ckpt_entry_position(t, e);

	if (i < t->norder) {
		memmove(&t->order[i], &t->order[i + 1],
			(t->norder - i - 1) * sizeof(*t->order));
		t->norder--;
		ckpt_tombs_shift(t, i, -1);
	}
	hash_remove(t, e);
	e->live = false;
}

void ckpt_entry_drop(struct ckpt_tree *t, struct entry *e)
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
	n = t->norder - t->nhidden;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

/* ---- lookup counts ------------------------------------------------------
 * The count is 64 bits wide, as the kernel's own: one lookup at a time, it
 * cannot wrap (2^64 of them would take centuries), so it never saturates
 * and equals what the kernel holds.  A forget of more than is counted
 * would mean a bug in the front end or here; it is an assertion failure
 * in debug builds, and clamped to zero (the entry may then be freed) in
 * release builds. */

void ckpt_entry_count_lookup(struct entry *e)
{
	__atomic_add_fetch(&e->nlookup, 1, __ATOMIC_RELAXED);
}

void ckpt_tree_forget(struct ckpt_tree *t, uint64_t id, uint64_t n)
{
	struct entry *e = NULL;
	int sub;

	pthread_rwlock_wrlock(&t->lock);
	e = ckpt_tree_resolve(t, id, &sub);
	if (e && sub < 0) {
		assert(n <= e->nlookup); /* the kernel forgets what it got */
		e->nlookup = e->nlookup > n ? e->nlookup - n : 0;
		if (!e->live)
			ckpt_entry_drop(t, e);
	}
	pthread_rwlock_unlock(&t->lock);
}
