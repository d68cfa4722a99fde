/*
 * commit.c - writing a tree as a new checkpoint, atomically: the
 * orchestration.
 *
 * A commit checks what it is about to write (check_entries, and the
 * target in replace.c), creates the new file beside the target as an
 * unnamed O_TMPFILE (a crash leaves nothing behind), lets the tree's
 * format encode into the sink the tree needs (ckpt_commit_write), then
 * replace.c fsyncs it, links it under a temporary name, renames it over
 * the target and fsyncs the directory: at every instant the target holds
 * the complete old or the complete new checkpoint.  The tree then
 * continues on what was written (tree/rebase.c).  Recovery files are
 * written the same way (recovery.c).
 *
 * Every entry point takes the tree's lock for writing, so what is encoded
 * is a consistent snapshot.  This file must know nothing of a format's
 * encoding nor of how bytes reach the disk: format.h and sink.h do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit/sink.h"

/* Orders positions in the order of tree ctx by name (stored bytes). */
static int by_name(const void *a, const void *b, void *ctx)
{
	const struct ckpt_tree *t = ctx;
	const struct entry *x = t->order[*(const size_t *)a];
	const struct entry *y = t->order[*(const size_t *)b];
	return ckpt_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* The order a checkpoint written from a file of another format lists its
 * parameters in: by name, as MindSpore's safetensors_to_ckpt writes what
 * load_checkpoint returns.  NULL (the tree's order) when the formats are
 * the same; *fail when memory is short. */
static size_t *name_order(const struct ckpt_tree *t, bool *fail)
{
	size_t *perm;

	*fail = false;
	if (!t->base || t->base->format == t->format ||
	    t->format != &ckpt_format_ckpt)
		return NULL;
	perm = malloc((t->norder + 1) * sizeof(*perm));
	*fail = !perm;
	if (!perm)
		return NULL;
	for (size_t i = 0; i < t->norder; i++)
		perm[i] = i;
	qsort_r(perm, t->norder, sizeof(*perm), by_name, CKPT_UNCONST(t));
	return perm;
}

/* Plaintext bytes a commit of t is expected to write (for progress). */
static uint64_t expected_bytes(const struct ckpt_tree *t)
{
	uint64_t total = 0;

	for (size_t i = 0; i < t->norder; i++)
		if (!t->order[i]->scratch)
			total += t->order[i]->kind == CKPT_ENTRY_FILE
					 ? t->order[i]->size
					 : t->order[i]->orig->rec_len;
	return total;
}

/* True if a new file of t in format fmt, as o selects it, may start as a
 * clone of t's file: unchanged records then keep their places. */
static bool may_clone(const struct ckpt_tree *t, const struct ckpt_format *fmt,
		      const struct ckpt_write_opts *o)
{
	return !t->no_reflink && !o->recovery && t->base &&
	       t->base->format == fmt && ckpt_extents_in_file(t->base);
}

/* The sink for a new file of t in format fmt: encrypted when the tree has
 * an output key (and the format is one MindSpore encrypts), else over a
 * clone of the old file where the file system shares blocks, else
 * O_DIRECT where it allows, else the page cache. */
static ckpt_err sink_new(const struct ckpt_tree *t,
			 const struct ckpt_format *fmt,
			 const struct ckpt_write_opts *o,
			 const struct ckpt_sink_conf *c, struct ckpt_sink **out)
{
	ckpt_err r;

	if (t->out_key && !fmt->encryptable)
		return ckpt_fail(c->err, CKPT_ERR_UNSUPPORTED, 0,
				 "%s: MindSpore has no encrypted %s files",
				 c->path, fmt->name);
	if (t->out_key)
		return ckpt_sink_enc_new(c, t->out_key, out);
	if (may_clone(t, fmt, o)) {
		r = ckpt_sink_clone_new(c, ckpt_fd(t->base), out);
		if (r || *out)
			return r;
	}
	*out = ckpt_sink_dio_new(c);
	return *out ? CKPT_OK : ckpt_sink_file_new(c, out);
}

ckpt_err ckpt_commit_write(struct ckpt_tree *t, int fd,
			   const struct ckpt_write_opts *o,
			   struct ckpt_error *err)
{
	const struct ckpt_format *fmt = t->format;
	bool nomem;
	const struct ckpt_tree_view v = {
		.t = t, .o = o, .perm = name_order(t, &nomem)};
	struct ckpt_snapshot snap;
	struct ckpt_sink_conf c = {
		.fd = fd,
		.path = t->tgt_pl.path,
		.err = err,
		.progress = t->progress,
		.progress_ctx = t->progress_ctx,
		.total = expected_bytes(t),
	};
	struct ckpt_sink *s;
	ckpt_err r = nomem ? ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory")
			   : sink_new(t, fmt, o, &c, &s);

	if (r) {
		free(CKPT_UNCONST(v.perm));
		return r;
	}
	if (c.progress) /* the total is known before the first byte */
		c.progress(c.progress_ctx, 0, c.total);
	ckpt_snapshot_of(&v, &snap);
	r = fmt->encode(&snap, &s->em, err);
	if (!r)
		r = ckpt_sink_finish(s);
	ckpt_sink_free(s);
	free(CKPT_UNCONST(v.perm));
	return r;
}

/* Every entry to write must have the bytes its dtype and shape need,
 * and those still read from an earlier checkpoint (a backup renamed
 * back) must find that file unchanged; the current one is checked by
 * ckpt_tree_check_target. */
static ckpt_err check_entries(struct ckpt_tree *t, struct ckpt_error *err)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	ckpt_dtype dt;

	for (size_t i = 0; i < t->norder; i++) {
		const struct entry *e = t->order[i];
		if (e->scratch)
			continue;
		if (e->kind == CKPT_ENTRY_FILE &&
		    !ckpt_entry_dims(e, dims, &ndims, &dt, false, err))
			return CKPT_ERR_INVAL;
		if (e->src && e->src != t->base && e->stage_fd < 0 &&
		    ckpt_file_changed(e->src))
			return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
					 "'%s' still reads from %s, which was "
					 "modified underneath the mount: "
					 "nothing was written",
					 e->fname, ckpt_path(e->src));
	}
	return CKPT_OK;
}

/* A clean tree whose last commit could not sync the directory: that last
 * step again. */
static ckpt_err sync_dir_again(struct ckpt_tree *t, struct ckpt_error *err)
{
	t->dir_unsynced = fsync(t->tgt_pl.dirfd) != 0;
	if (!t->dir_unsynced)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_IO, 0,
			 "the directory of %s could not "
			 "be synced (%s): the last commit may not survive a "
			 "power failure",
			 t->tgt_pl.path, strerror(errno));
}

/* Writes, checks and puts in place the new checkpoint of dirty tree t;
 * the tree continues on it with the index its encode built, if it could
 * (no scan of what was just written). */
static ckpt_err commit_dirty(struct ckpt_tree *t, struct ckpt_error *err)
{
	struct ckpt_write_opts all = {0};
	char tmp[300];
	bool in_place = false;
	int fd, lfd = -1;
	ckpt_err r = ckpt_tree_check_target(t, err); /* what happened first */

	if (!r)
		r = check_entries(t, err);
	if (r)
		return r;
	all.index = ckpt_tree_rebinds(t) && t->format->encode_indexes
			    ? ckpt_index_new()
			    : NULL;
	fd = ckpt_out_create(t->tgt_pl.dirfd, t->tgt_pl.base, tmp, sizeof(tmp));
	if (fd < 0) {
		ckpt_close(all.index);
		return ckpt_write_failed(err, t->tgt_pl.path,
					 "creating a file in its directory",
					 NULL);
	}
	r = ckpt_commit_write(t, fd, &all, err);
	if (!r)
		r = ckpt_replace_target(t, fd, tmp, &in_place, &lfd, err);
	else if (*tmp)
		unlinkat(t->tgt_pl.dirfd, tmp, 0);
	if (!r || in_place) {
		ckpt_tree_rebase(t, lfd, all.index);
		ckpt_repin(t, lfd); /* takes lfd */
	} else {
		ckpt_close(all.index);
	}
	t->dir_unsynced = in_place && r;
	close(fd);
	return r;
}

ckpt_err ckpt_tree_commit(struct ckpt_tree *t, struct ckpt_error *err)
{
	ckpt_err r = CKPT_OK;

	pthread_rwlock_wrlock(&t->lock);
	if (!t->dirty && t->dir_unsynced) /* the last commit's last step */
		r = sync_dir_again(t, err);
	if (!t->dirty)
		goto out;
	r = ckpt_tree_writable(t, err);
	if (!r)
		r = commit_dirty(t, err);
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}
