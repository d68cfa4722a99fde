/*
 * rebase.c - the tree after a commit: it continues on what was written.
 *
 * A plain tree is rebound to the new file: its entries read their bytes
 * from it and their edits are forgotten.  The new file's index is the one
 * the commit's encode built, where the format can (format/ckpt/
 * reindex.c), else a scan of the file.  An encrypted (or one-shot) tree
 * stays on its decrypted copy and staged edits, which are exactly what was
 * committed.  Called by the commit with the tree locked for writing.  It
 * must never fail half way: if the new file cannot be scanned, the tree
 * stays on the old one, which is still open, and stays dirty.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree/tree.h"

/* Entries written into a checkpoint: the live, non-scratch ones. */
static size_t count_written(const struct ckpt_tree *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->norder; i++)
		n += !t->order[i]->scratch;
	return n;
}

/* True if an entry left out of the commit (deleted but open, scratch)
 * still reads from the old file: it then stays open while they exist. */
static bool old_still_read(const struct ckpt_tree *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		const struct entry *e = t->slots[i];
		if (e && t->base && e->src == t->base &&
		    (!e->live || e->scratch))
			return true;
	}
	return false;
}

/* Orders entries by name (stored bytes). */
static int by_name(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a;
	const struct entry *y = *(struct entry *const *)b;
	return ckpt_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* The written entries in the order of the parameters of nf, which a
 * format may have written in an order of its own (safetensors: by
 * dtype, then name): a malloc'd array of ckpt_count(nf), or NULL if
 * memory is short or some parameter matches no entry. */
static struct entry **match(const struct ckpt_tree *t,
			    const struct ckpt_file *nf)
{
	size_t n = 0, count = ckpt_count(nf);
	struct entry **sorted = malloc((t->norder + 1) * sizeof(*sorted));
	struct entry **out = malloc((t->norder + 1) * sizeof(*out));

	if (!sorted || !out)
		goto fail;
	for (size_t i = 0; i < t->norder; i++)
		if (!t->order[i]->scratch)
			sorted[n++] = t->order[i];
	qsort(sorted, n, sizeof(*sorted), by_name);
	for (size_t k = 0; k < count; k++) {
		const struct ckpt_param *p = ckpt_param_at(nf, k);
		struct entry key = {.name = p->name,
				    .name_len = (uint32_t)p->name_len};
		struct entry *kp = &key,
			     **hit = bsearch(&kp, sorted, n, sizeof(*sorted),
					     by_name);
		if (!hit)
			goto fail;
		out[k] = *hit;
	}
	free(sorted);
	return out;
fail:
	free(sorted);
	free(out);
	return NULL;
}

/* The order becomes that of nf (written[k] is parameter k), scratch
 * entries after it in their order, and each written entry is bound to its
 * parameter; takes written. */
static void reorder(struct ckpt_tree *t, struct entry **written,
		    struct ckpt_file *nf)
{
	size_t n = ckpt_count(nf), k = n;

	for (size_t i = 0; i < t->norder; i++)
		if (t->order[i]->scratch)
			written[k++] = t->order[i]; /* room: see below */
	if (t->norder) /* (an empty tree may have no order array) */
		memcpy(t->order, written, t->norder * sizeof(*t->order));
	for (size_t i = 0; i < n; i++)
		ckpt_entry_bind(t->order[i], ckpt_param_at(nf, i), nf);
	free(written);
}

/* The index of the new file nfd (taken), as a scan finds it; NULL if it
 * cannot be scanned. */
static struct ckpt_file *scan(const struct ckpt_tree *t, int nfd)
{
	struct ckpt_open_opts oo = t->open_opts;
	struct ckpt_file *nf = NULL;

	oo.skip_crc = true; /* we just computed it */
	oo.key = NULL;
	oo.format = t->format->name;
	ckpt_open_fd(nfd, t->tgt_pl.path, &oo, &nf, NULL);
	return nf;
}

/* Makes the index the commit built (complete) that of nfd, unless fd
 * and it disagree on the size; false (nfd still the caller's) if not. */
static bool adopt(const struct ckpt_tree *t, struct ckpt_file *built, int nfd)
{
	struct stat st;

	if (fstat(nfd, &st) < 0 ||
	    (uint64_t)st.st_size != built->stats.file_size ||
	    !(built->path = strdup(t->tgt_pl.path)))
		return false;
	built->fd = nfd;
	ckpt_ident_of(&st, &built->ident);
	return true;
}

#ifndef NDEBUG
/* The debug build checks the built index against a scan of the file:
 * a difference is a bug of reindex.c, and stops the program. */
static void check_built(const struct ckpt_tree *t, const struct ckpt_file *b)
{
	int nfd = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
	struct ckpt_file *nf = nfd < 0 ? NULL : scan(t, nfd);
	char why[200];

	if (nf && !ckpt_index_same(b, nf, why, sizeof(why))) {
		fprintf(stderr,
			"ckptfs: internal error: the index built by "
			"the commit of %s differs from its scan: %s\n",
			t->tgt_pl.path, why);
		abort();
	}
	ckpt_close(nf);
}
#else
static void check_built(const struct ckpt_tree *t, const struct ckpt_file *b)
{
	(void)t;
	(void)b;
}
#endif

/* The index of the new file nfd (taken): built, when the commit could
 * (taken too), else scanned; NULL if neither works. */
static struct ckpt_file *new_index(const struct ckpt_tree *t, int nfd,
				   struct ckpt_file *built)
{
	if (built && built->format && adopt(t, built, nfd)) {
		check_built(t, built);
		return built;
	}
	ckpt_close(built);
	return scan(t, nfd);
}

/* The tree continues on the new file fd (a descriptor of its own is
 * taken), indexed by built if that is complete (taken).  If it cannot be
 * indexed, the tree stays as it was. */
static void rebind(struct ckpt_tree *t, int fd, struct ckpt_file *built)
{
	struct ckpt_file *nf = NULL;
	struct entry **written = NULL;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	if (nfd < 0)
		ckpt_close(built);
	else
		nf = new_index(t, nfd, built);
	if (!nf || ckpt_count(nf) != count_written(t) ||
	    !(written = match(t, nf))) {
		ckpt_close(nf);
		return;
	}
	if (old_still_read(t)) {
		struct ckpt_file **r =
			realloc(t->retired, (t->nretired + 1) * sizeof(*r));
		if (!r) {
			free(written);
			ckpt_close(nf);
			return;
		}
		t->retired = r;
		t->retired[t->nretired++] = t->base;
	} else {
		ckpt_close(t->base);
	}
	reorder(t, written, nf);
	t->base = nf;
	ckpt_tree_meta_load(t, nf, NULL); /* as before if memory is short */
	ckpt_tree_release_retired(t);
	t->base_mtime_ns = ckpt_ts_ns(&nf->ident.mtime);
	t->dirty = false;
}

bool ckpt_tree_rebinds(const struct ckpt_tree *t)
{
	return !t->one_shot && !t->out_key;
}

void ckpt_tree_rebase(struct ckpt_tree *t, int fd, struct ckpt_file *built)
{
	/* An encrypted tree stays on its decrypted copy and its staged
	 * edits: reopening would decrypt the whole file again, next to the
	 * copy already held. */
	if (!ckpt_tree_rebinds(t)) {
		for (size_t i = 0; i < t->norder; i++)
			if (!t->order[i]->scratch)
				ckpt_entry_pin_shape(t->order[i]);
		t->dirty = false;
		ckpt_close(built);
	} else {
		rebind(t, fd, built); /* the target is the new checkpoint */
	}
	ckpt_tombs_clear(t);
}
