/*
 * rebase.c - the tree after a commit: it continues on what was written.
 *
 * A plain tree is rebound to the new file: its entries read their bytes
 * from it and their edits are forgotten.  An encrypted (or one-shot) tree
 * stays on its decrypted copy and staged edits, which are exactly what was
 * committed.  Called by the commit with the tree locked for writing.  It
 * must never fail half way: if the new file cannot be scanned, the tree
 * stays on the old one, which is still open, and stays dirty.
 */
#include <fcntl.h>
#include <stdlib.h>
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

/* The tree continues on the new file fd (a descriptor of its own is
 * taken).  If it cannot be scanned, the tree stays as it was. */
static void rebind(struct ckpt_tree *t, int fd)
{
	struct ckpt_open_opts oo = t->open_opts;
	struct ckpt_file *nf = NULL;
	size_t k = 0;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	oo.skip_crc = true; /* we just computed it */
	oo.key = NULL;
	if (nfd < 0 ||
	    ckpt_open_fd(nfd, t->tgt_pl.path, &oo, &nf, NULL) != CKPT_OK ||
	    ckpt_count(nf) != count_written(t)) {
		ckpt_close(nf);
		return;
	}
	if (old_still_read(t)) {
		struct ckpt_file **r =
			realloc(t->retired, (t->nretired + 1) * sizeof(*r));
		if (!r) {
			ckpt_close(nf);
			return;
		}
		t->retired = r;
		t->retired[t->nretired++] = t->base;
	} else {
		ckpt_close(t->base);
	}
	for (size_t i = 0; i < t->norder; i++)
		if (!t->order[i]->scratch)
			ckpt_entry_bind(t->order[i], ckpt_param_at(nf, k++),
					nf);
	t->base = nf;
	ckpt_tree_release_retired(t);
	t->base_mtime_ns = ckpt_ts_ns(&nf->ident.mtime);
	t->dirty = false;
}

void ckpt_tree_rebase(struct ckpt_tree *t, int fd)
{
	/* An encrypted tree stays on its decrypted copy and its staged
	 * edits: reopening would decrypt the whole file again, next to the
	 * copy already held. */
	if (t->one_shot || t->out_key) {
		for (size_t i = 0; i < t->norder; i++)
			if (!t->order[i]->scratch)
				ckpt_entry_pin_shape(t->order[i]);
		t->dirty = false;
	} else {
		rebind(t, fd); /* the target is the new checkpoint */
	}
	ckpt_tombs_clear(t);
}
