/*
 * select.c - which parameters a tree shows, and renaming them all at once.
 *
 * Owns: the selection rule (ckpt_select_keep: include and exclude globs
 * on the stored name); hiding the parameters it does not keep when a tree
 * is opened (ckpt_select_apply) and what a name taken by one of them
 * says (ckpt_select_taken); dropping the hidden entries (convert); and
 * ckpt_tree_rename_all (convert --rename, --name-map) and
 * ckpt_tree_rename_prefix (a directory of ckptfs -o tree).
 *
 * A hidden entry stays in the order and in the hash of names, so every
 * commit writes it where it was and as it was (it is never touched: its
 * records are copied) and no other entry can take its name.  What hides
 * it are the checks elsewhere: ckpt_tree_resolve (no id names it),
 * ckpt_tree_list, ckpt_tree_lookup, ckpt_tree_count, and the create,
 * unlink and rename of edit.c.
 *
 * Locking: ckpt_select_apply runs inside ckpt_tree_open (nobody else
 * sees the tree yet); the public functions take t->lock.
 *
 * Never: rename half of the entries.  ckpt_tree_rename_all computes and
 * checks every new name (and allocates everything) before the first
 * rename, which cannot fail; so does ckpt_tree_rename_prefix (the
 * rename of a directory of the tree view, ckpt_view.h).
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_view.h"
#include "tree/tree.h"

static const char no_memory[] = "out of memory";

/* True if name matches one of the globs (a NULL list has none). */
static bool matches(const char *const *globs, const char *name)
{
	for (; globs && *globs; globs++)
		if (fnmatch(*globs, name, 0) == 0)
			return true;
	return false;
}

bool ckpt_select_keep(const char *const *include, const char *const *exclude,
		      const char *name)
{
	if (include && *include && !matches(include, name))
		return false;
	return !matches(exclude, name);
}

void ckpt_select_apply(struct ckpt_tree *t, const char *const *include,
		       const char *const *exclude)
{
	if (!(include && *include) && !(exclude && *exclude))
		return;
	for (size_t i = 0; i < t->norder; i++) {
		struct entry *e = t->order[i];
		if (e->hidden || ckpt_select_keep(include, exclude, e->name))
			continue;
		e->hidden = true;
		t->nhidden++;
	}
}

ckpt_err ckpt_select_taken(const struct entry *e, struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_EXISTS, 0,
			 "'%s' is the name of a hidden parameter (not "
			 "selected by -o include/exclude): it is kept as it "
			 "is, and no other file can take its name",
			 e->fname);
}

size_t ckpt_tree_hidden_count(struct ckpt_tree *t)
{
	size_t n;

	pthread_rwlock_rdlock(&t->lock);
	n = t->nhidden;
	pthread_rwlock_unlock(&t->lock);
	return n;
}

/* ---- dropping the hidden entries ---------------------------------------- */

/* Takes the hidden entries out of every hash chain (one pass over the
 * table, rather than a search per entry). */
static void unhash_hidden(struct ckpt_tree *t)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct entry **p = &t->buckets[b];
		while (*p) {
			struct entry *e = *p;
			if (e->hidden) {
				*p = e->hnext;
				e->hnext = NULL;
			} else {
				p = &e->hnext;
			}
		}
	}
}

ckpt_err ckpt_tree_drop_hidden(struct ckpt_tree *t, struct ckpt_error *err)
{
	ckpt_err r;
	size_t k = 0;

	pthread_rwlock_wrlock(&t->lock);
	r = ckpt_tree_writable(t, err);
	if (r || !t->nhidden)
		goto out;
	unhash_hidden(t);
	for (size_t i = 0; i < t->norder; i++) {
		struct entry *e = t->order[i];
		if (!e->hidden) {
			t->order[k++] = e;
			continue;
		}
		ckpt_tombs_shift(t, k, -1); /* it left from position k */
		e->live = false;
		e->hidden = false;
		ckpt_entry_drop(t, e); /* never looked up: freed */
	}
	t->norder = k;
	t->nhidden = 0;
	t->dirty = true;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* ---- renaming every entry ------------------------------------------------ */

/* One entry's name after the renaming (name == NULL: unchanged). */
struct plan {
	struct entry *e;
	char *name; /* new stored name, len bytes; malloc'd */
	size_t len;
	char *fname; /* its shown name; malloc'd */
};

/* A name after the renaming, for the collision check. */
struct final {
	const char *name;
	size_t len;
	size_t i; /* the entry's index in the order */
};

static int final_cmp(const void *a, const void *b)
{
	const struct final *x = a, *y = b;
	int c = ckpt_name_cmp(x->name, x->len, y->name, y->len);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

static void free_plan(struct plan *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].name);
		free(p[i].fname);
	}
	free(p);
}

/* Asks fn for the new name of entry i and checks it. */
static ckpt_err plan_one(struct plan *p, ckpt_rename_fn fn, void *ctx,
			 struct ckpt_error *err)
{
	const struct entry *e = p->e;
	char *out = NULL;
	size_t len;
	ckpt_err r;

	if (err)
		err->code = CKPT_OK;
	r = fn(ctx, e->name, e->name_len, &out, err);
	if (r) {
		free(out);
		if (err && err->code != r) /* fn said nothing */
			ckpt_fail(err, r, 0, "renaming '%s': %s", e->fname,
				  ckpt_strerror(r));
		return r;
	}
	if (!out)
		return CKPT_OK;
	len = strlen(out);
	if (len == e->name_len && !memcmp(out, e->name, len)) {
		free(out); /* the same name: unchanged */
		return CKPT_OK;
	}
	p->name = out;
	p->len = len;
	if (e->kind != CKPT_ENTRY_FILE)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "'%s' is a map parameter, which cannot be "
				 "renamed",
				 e->fname);
	if (!len)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "renaming '%s' would leave it without a name",
				 e->fname);
	if (len > CKPT_NAME_MAX || !ckpt_utf8_valid(out, len))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "renaming '%s' would give it a name that %s",
				 e->fname,
				 len > CKPT_NAME_MAX
					 ? "is too long"
					 : "is not valid UTF-8 (MindSpore "
					   "stores names as protobuf strings)");
	p->fname = ckpt_name_escape(out, len);
	return p->fname ? CKPT_OK
			: ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
}

/* The names after the renaming must all differ: CKPT_ERR_EXISTS naming
 * the first two entries (in order) that would share one. */
static ckpt_err check_collisions(const struct ckpt_tree *t,
				 const struct plan *p, struct ckpt_error *err)
{
	size_t n = t->norder, a = n, b = n;
	struct final *f = malloc((n ? n : 1) * sizeof(*f));
	char *shared = NULL;
	ckpt_err r;

	if (!f)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	for (size_t i = 0; i < n; i++) {
		f[i].name = p[i].name ? p[i].name : p[i].e->name;
		f[i].len = p[i].name ? p[i].len : p[i].e->name_len;
		f[i].i = i;
	}
	qsort(f, n, sizeof(*f), final_cmp);
	for (size_t k = 1; k < n; k++) {
		if (f[k].len != f[k - 1].len ||
		    memcmp(f[k].name, f[k - 1].name, f[k].len))
			continue;
		if (f[k - 1].i < a || (f[k - 1].i == a && f[k].i < b)) {
			a = f[k - 1].i; /* sorted: f[k-1].i < f[k].i */
			b = f[k].i;
		}
	}
	free(f);
	if (a == n)
		return CKPT_OK;
	shared = p[a].fname   ? p[a].fname
		 : p[b].fname ? p[b].fname
			      : t->order[a]->fname;
	r = ckpt_fail(err, CKPT_ERR_EXISTS, 0,
		      "renaming would give '%s'%s and '%s'%s the same name "
		      "'%s': nothing was renamed",
		      t->order[a]->fname,
		      t->order[a]->hidden ? " (hidden)" : "",
		      t->order[b]->fname,
		      t->order[b]->hidden ? " (hidden)" : "", shared);
	return r;
}

/* ckpt_tree_rename_all's work, t->lock held for writing; scratch files
 * are asked about too when scratch. */
static ckpt_err rename_locked(struct ckpt_tree *t, ckpt_rename_fn fn, void *ctx,
			      bool scratch, struct ckpt_error *err)
{
	size_t n = t->norder;
	struct plan *p = calloc(n ? n : 1, sizeof(*p));
	bool any = false;
	ckpt_err r = CKPT_OK;

	if (!p)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	for (size_t i = 0; i < n && !r; i++) {
		p[i].e = t->order[i];
		if (!p[i].e->hidden && (scratch || !p[i].e->scratch))
			r = plan_one(&p[i], fn, ctx, err);
		any |= p[i].name != NULL;
	}
	if (r || !any)
		goto out;
	r = check_collisions(t, p, err);
	if (r)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!p[i].name)
			continue;
		ckpt_entry_rename(t, p[i].e, p[i].name, p[i].len, p[i].fname);
		p[i].e->renamed = true;
		p[i].name = p[i].fname = NULL; /* the entry's now */
	}
	t->dirty = true;
out:
	free_plan(p, n);
	return r;
}

ckpt_err ckpt_tree_rename_all(struct ckpt_tree *t, ckpt_rename_fn fn, void *ctx,
			      struct ckpt_error *err)
{
	ckpt_err r;

	pthread_rwlock_wrlock(&t->lock);
	r = ckpt_tree_writable(t, err);
	if (!r)
		r = rename_locked(t, fn, ctx, false, err);
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* ---- renaming a prefix --------------------------------------------------- */

/* A prefix and its new spelling (stored names). */
struct prefix_move {
	const char *from, *to;
	size_t flen, tlen;
};

/* True if the stored name (len bytes) is prefix (plen bytes) or lies
 * under it. */
static bool in_prefix(const char *name, size_t len, const char *prefix,
		      size_t plen)
{
	return (len == plen && memcmp(name, prefix, len) == 0) ||
	       ckpt_view_under(name, len, prefix, plen);
}

/* The ckpt_rename_fn of a prefix move. */
static ckpt_err move_name(void *ctx, const char *name, size_t len, char **out,
			  struct ckpt_error *err)
{
	const struct prefix_move *m = ctx;

	*out = NULL;
	if (!in_prefix(name, len, m->from, m->flen))
		return CKPT_OK;
	if (memchr(name, '\0', len))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "a name that holds a NUL byte cannot be "
				 "moved");
	*out = malloc(m->tlen + len - m->flen + 1);
	if (!*out)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	memcpy(*out, m->to, m->tlen);
	memcpy(*out + m->tlen, name + m->flen, len - m->flen + 1);
	return CKPT_OK;
}

/* CKPT_ERR_NOTEMPTY if an entry that does not move is named to or lies
 * under it; CKPT_ERR_INVAL if to lies in from. */
static ckpt_err prefix_check(const struct ckpt_tree *t,
			     const struct prefix_move *m,
			     struct ckpt_error *err)
{
	if (in_prefix(m->to, m->tlen, m->from, m->flen))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' cannot move into itself ('%s')", m->from,
				 m->to);
	for (size_t i = 0; i < t->norder; i++) {
		const struct entry *e = t->order[i];
		if (!in_prefix(e->name, e->name_len, m->to, m->tlen) ||
		    in_prefix(e->name, e->name_len, m->from, m->flen))
			continue;
		return ckpt_fail(err, CKPT_ERR_NOTEMPTY, 0,
				 "'%s' cannot take the place of '%s': it "
				 "holds '%s'%s",
				 m->from, m->to, e->fname,
				 e->hidden ? " (hidden)" : "");
	}
	return CKPT_OK;
}

ckpt_err ckpt_tree_rename_prefix(struct ckpt_tree *t, const char *from,
				 const char *to, struct ckpt_error *err)
{
	struct prefix_move m = {from, to, strlen(from), strlen(to)};
	ckpt_err r;

	pthread_rwlock_wrlock(&t->lock);
	r = ckpt_tree_writable(t, err);
	if (!r)
		r = prefix_check(t, &m, err);
	if (!r)
		r = rename_locked(t, move_name, &m, true, err);
	pthread_rwlock_unlock(&t->lock);
	return r;
}
