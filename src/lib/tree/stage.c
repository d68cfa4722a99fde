/*
 * stage.c - staging files: where changed tensor bytes live until a commit.
 *
 * A staging file is an unnamed O_TMPFILE in the staging directory (beside
 * the checkpoint by default), so nothing is left behind after a crash and
 * a big tensor never has to fit in memory.  Untouched bytes are copied in
 * with copy_file_range, which may share blocks on filesystems that can.
 *
 * A staging file is never truncated to 0 bytes: ext4 (auto_da_alloc)
 * marks a file truncated to 0 and writes all its dirty data to the disk
 * when it is closed, i.e. at the end of the next commit, when the staged
 * bytes are no longer needed; for a bulk rewrite that doubled the disk
 * writes of the commit.  Emptying a staged tensor takes a new file instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tree/tree.h"

/* the name of a staging file where the filesystem has no O_TMPFILE */
#define STAGE_PREFIX ".ckptfs-stage-"

static int staging_fd(struct ckpt_tree *t, struct ckpt_error *err)
{
	int fd;

	if (t->memory_staging) { /* decrypted data never goes to a disk */
		fd = memfd_create("ckptfs-stage", MFD_CLOEXEC);
		if (fd < 0)
			ckpt_fail(err, CKPT_ERR_IO, 0,
				  "cannot create a "
				  "staging file in memory: %s",
				  strerror(errno));
		return fd;
	}
	fd = ckpt_tmpfile_at(t->stage_dirfd, STAGE_PREFIX, NULL, 0);
	if (fd < 0 && !t->staging_fixed && t->tmp_dirfd >= 0)
		fd = ckpt_tmpfile_at(t->tmp_dirfd, STAGE_PREFIX, NULL, 0);
	if (fd < 0)
		ckpt_fail(err, CKPT_ERR_IO, 0,
			  "cannot create a staging file in %s: %s",
			  t->staging_dir, strerror(errno));
	return fd;
}

/* ckpt_piece_fn: copies a piece into the staging file *ctx at its offset;
 * errno tells the caller why it failed. */
static ckpt_err stage_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			    struct ckpt_error *err)
{
	int fd = *(int *)ctx;
	int r = p->fd >= 0 ? ckpt_copy_range(p->fd, p->pos, fd, at, p->len)
			   : ckpt_pwrite_full(fd, p->mem, p->len, at);

	return r < 0 ? ckpt_fail(err, CKPT_ERR_IO, at, "staging") : CKPT_OK;
}

ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err)
{
	int fd;

	if (e->stage_fd >= 0)
		return CKPT_OK;
	if (copy && e->orig && e->size && ckpt_file_changed(e->src))
		return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
				 "cannot edit '%s': %s was modified underneath "
				 "the mount, so its old bytes are gone",
				 e->fname, ckpt_path(e->src));
	fd = staging_fd(t, err);
	if (fd < 0)
		return CKPT_ERR_IO;
	if (copy && e->orig && e->size &&
	    ckpt_entry_walk(e, 0, e->size, stage_piece, &fd, err))
		goto fail;
	if (e->size && ftruncate(fd, (off_t)e->size) < 0)
		goto fail;
	e->stage_fd = fd;
	return CKPT_OK;
fail:
	ckpt_fail(err, CKPT_ERR_IO, 0, "cannot stage '%s' in %s: %s", e->fname,
		  t->staging_dir, strerror(errno));
	close(fd);
	return CKPT_ERR_IO;
}

ckpt_err ckpt_stage_resize(struct ckpt_tree *t, struct entry *e, uint64_t size,
			   struct ckpt_error *err)
{
	bool fresh = e->stage_fd < 0;
	int fd;
	ckpt_err r;

	if (!size) {
		fd = staging_fd(t, err);
		if (fd < 0)
			return CKPT_ERR_IO;
		if (!fresh)
			close(e->stage_fd); /* unlinked: its pages go, unwritten */
		e->stage_fd = fd;
		return CKPT_OK;
	}
	r = ckpt_stage(t, e, true, err);
	if (r)
		return r;
	if (ftruncate(e->stage_fd, (off_t)size) == 0)
		return CKPT_OK;
	ckpt_fail(err, CKPT_ERR_IO, 0, "truncating '%s': %s", e->fname,
		  strerror(errno));
	if (fresh) {
		close(e->stage_fd);
		e->stage_fd = -1;
	}
	return CKPT_ERR_IO;
}
