/*
 * scratch.c - what editors and tools do around a parameter: their
 * temporary files, and the parameter they delete or rename away only to
 * write it again.
 *
 * A scratch file is an entry created or renamed in this tree whose name
 * matches a glob (default below): vim's swap file, rsync's and sed's
 * temporaries, backups.  It behaves as a file but is never committed.
 *
 * A tomb remembers a parameter deleted (rm, tar's unlink before create) or
 * renamed to a scratch name (vim's backup) since the last commit: a new
 * file created, or renamed, under that name takes its place in the order
 * and, having no dtype/shape of its own, its dtype and shape (shown only
 * while the bytes fit them).
 */
#include <fnmatch.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tree/tree.h"

/* vim/emacs/rsync temporaries (".x.swp", ".#x", ".x.AbC123"), emacs
 * autosaves, backups, sed -i. */
static const char default_globs[] = ".*:#*#:*~:sed??????";

enum {
	MAX_TOMBS = 4096
};

ckpt_err ckpt_scratch_init(struct ckpt_tree *t, const char *globs,
			   struct ckpt_error *err)
{
	char *copy = strdup(globs ? globs : default_globs), *save = NULL;
	size_t n = 1;

	if (!copy)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (const char *p = copy; *p; p++)
		n += *p == ':';
	t->scratch_globs = calloc(n + 1, sizeof(char *));
	if (!t->scratch_globs) {
		free(copy);
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	}
	t->scratch_buf = copy; /* the globs point into it */
	n = 0;
	for (char *g = strtok_r(copy, ":", &save); g;
	     g = strtok_r(NULL, ":", &save))
		t->scratch_globs[n++] = g;
	return CKPT_OK;
}

void ckpt_scratch_free(struct ckpt_tree *t)
{
	free(t->scratch_globs);
	free(t->scratch_buf);
	t->scratch_globs = NULL;
	t->scratch_buf = NULL;
}

bool ckpt_scratch_match(const struct ckpt_tree *t, const struct entry *e)
{
	if (e->orig && e->name_len == e->orig->name_len &&
	    !memcmp(e->name, e->orig->name, e->name_len))
		return false; /* a parameter under its own name, also after
			       * renames that led back to it */
	for (char **g = t->scratch_globs; g && *g; g++)
		if (fnmatch(*g, e->fname, 0) == 0)
			return true;
	return false;
}

bool ckpt_tree_is_scratch(struct ckpt_tree *t, uint64_t id)
{
	struct entry *e;
	bool s = false;
	int sub;

	pthread_rwlock_rdlock(&t->lock);
	e = ckpt_tree_resolve(t, id, &sub);
	s = e && sub < 0 && e->scratch;
	pthread_rwlock_unlock(&t->lock);
	return s;
}

bool ckpt_tree_name_is_scratch(struct ckpt_tree *t, const char *fname)
{
	bool s = false;

	pthread_rwlock_rdlock(&t->lock);
	if (!ckpt_tomb_find(t, fname)) /* a parameter's name stays one */
		for (char **g = t->scratch_globs; g && *g && !s; g++)
			s = fnmatch(*g, fname, 0) == 0;
	pthread_rwlock_unlock(&t->lock);
	return s;
}

/* ---- tombs --------------------------------------------------------------- */

struct tomb *ckpt_tomb_find(struct ckpt_tree *t, const char *fname)
{
	for (size_t i = t->ntombs; i-- > 0;)
		if (strcmp(t->tombs[i].fname, fname) == 0)
			return &t->tombs[i];
	return NULL;
}

void ckpt_tomb_drop(struct ckpt_tree *t, struct tomb *tb)
{
	free(tb->fname);
	free(tb->dims);
	memmove(tb, tb + 1,
		(size_t)(t->tombs + t->ntombs - tb - 1) * sizeof(*tb));
	t->ntombs--;
}

void ckpt_tombs_shift(struct ckpt_tree *t, size_t pos, int by)
{
	for (size_t i = 0; i < t->ntombs; i++)
		if (by > 0 ? t->tombs[i].pos >= pos : t->tombs[i].pos > pos)
			t->tombs[i].pos += (size_t)(ptrdiff_t)by;
}

void ckpt_tombs_clear(struct ckpt_tree *t)
{
	while (t->ntombs)
		ckpt_tomb_drop(t, &t->tombs[t->ntombs - 1]);
}

void ckpt_tomb_add(struct ckpt_tree *t, const struct entry *e, size_t pos)
{
	struct entry v;
	struct tomb tb = {.pos = pos};
	struct tomb *old = ckpt_tomb_find(t, e->fname);

	if (e->scratch || e->kind != CKPT_ENTRY_FILE ||
	    (!e->dtype_set && !e->inherited))
		return; /* nothing worth inheriting */
	if (old)
		ckpt_tomb_drop(t, old);
	if (t->ntombs == MAX_TOMBS)
		ckpt_tomb_drop(t, &t->tombs[0]);
	ckpt_entry_view(e, &v);
	tb.dtype = v.dtype;
	tb.ndims = v.ndims;
	tb.shape_explicit = v.shape_explicit;
	tb.fname = strdup(e->fname);
	tb.dims = malloc((v.ndims ? v.ndims : 1) * sizeof(*tb.dims));
	if (!(t->ntombs % 16)) {
		struct tomb *n =
			realloc(t->tombs, (t->ntombs + 16) * sizeof(*n));
		if (n)
			t->tombs = n;
		else
			tb.pos = (size_t)-1; /* no room */
	}
	if (!tb.fname || !tb.dims || tb.pos == (size_t)-1) {
		free(tb.fname);
		free(tb.dims);
		return;
	}
	if (v.ndims)
		memcpy(tb.dims, v.dims, v.ndims * sizeof(*tb.dims));
	t->tombs[t->ntombs++] = tb;
}
