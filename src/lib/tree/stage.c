/*
 * stage.c - staging files: where changed tensor bytes live until a commit.
 *
 * A staging file is an unnamed O_TMPFILE in the staging directory (beside
 * the checkpoint by default), so nothing is left behind after a crash and
 * a big tensor never has to fit in memory.  Untouched bytes are copied in
 * with copy_file_range, which shares blocks on filesystems that can (XFS,
 * Btrfs) where the two offsets are alike modulo the block size: so the
 * entry's bytes start at e->stage_off in its staging file, the source
 * offset of its first byte modulo the block size.  Staging a 1 GiB
 * parameter to change 4 KiB of it then copies a few blocks, and a commit
 * that puts it back at its old offset (a clone, sink_file.c) shares them
 * again.
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

/* The staging file being filled, for stage_piece. */
struct stage_ctx {
	int fd;
	uint64_t blk; /* the staging file's block size */
	uint32_t off; /* where the entry's bytes start in it */
};

/* ckpt_piece_fn: copies a piece into the staging file at its offset (the
 * first piece decides where the entry starts); errno tells the caller
 * why it failed. */
static ckpt_err stage_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			    struct ckpt_error *err)
{
	struct stage_ctx *c = ctx;
	int r;

	if (at == 0) /* the first piece */
		c->off = p->fd >= 0 ? (uint32_t)(p->pos % c->blk) : 0;
	r = p->fd >= 0
		    ? ckpt_copy_range(p->fd, p->pos, c->fd, c->off + at, p->len)
		    : ckpt_pwrite_full(c->fd, p->mem, p->len, c->off + at);
	return r < 0 ? ckpt_fail(err, CKPT_ERR_IO, at, "staging") : CKPT_OK;
}

ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err)
{
	struct stage_ctx c = {.fd = -1};

	if (e->stage_fd >= 0)
		return CKPT_OK;
	if (copy && e->orig && e->size && ckpt_file_changed(e->src))
		return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
				 "cannot edit '%s': %s was modified underneath "
				 "the mount, so its old bytes are gone",
				 e->fname, ckpt_path(e->src));
	c.fd = staging_fd(t, err);
	if (c.fd < 0)
		return CKPT_ERR_IO;
	c.blk = ckpt_block_size(c.fd);
	if (copy && e->orig && e->size &&
	    ckpt_entry_walk(e, 0, e->size, stage_piece, &c, err))
		goto fail;
	if (e->size && ftruncate(c.fd, (off_t)(c.off + e->size)) < 0)
		goto fail;
	e->stage_fd = c.fd;
	e->stage_off = c.off;
	return CKPT_OK;
fail:
	ckpt_fail(err, CKPT_ERR_IO, 0, "cannot stage '%s' in %s: %s", e->fname,
		  t->staging_dir, strerror(errno));
	close(c.fd);
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
		e->stage_off = 0;
		return CKPT_OK;
	}
	r = ckpt_stage(t, e, true, err);
	if (r)
		return r;
	if (ftruncate(e->stage_fd, (off_t)(e->stage_off + size)) == 0)
		return CKPT_OK;
	ckpt_fail(err, CKPT_ERR_IO, 0, "truncating '%s': %s", e->fname,
		  strerror(errno));
	if (fresh) {
		close(e->stage_fd);
		e->stage_fd = -1;
	}
	return CKPT_ERR_IO;
}
