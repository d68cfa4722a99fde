/*
 * stage.c - staging files: where changed tensor bytes live until a commit.
 *
 * A staging file is an unnamed O_TMPFILE in the staging directory (beside
 * the checkpoint by default), so nothing is left behind after a crash and
 * a big tensor never has to fit in memory.  Untouched bytes are copied in
 * with copy_file_range, which shares blocks on filesystems that can (XFS,
 * Btrfs) where the two offsets are alike modulo the block size: so the
 * entry's bytes start at e->stage_off in its staging file, the source
 * offset of its first byte modulo the block size.  A parameter over 512 MiB
 * is stored in slices, each after a record header of its own, so each
 * slice starts after a gap (under a block, never read) that gives it the
 * same alignment as its source (ckpt_stage_pos).  Staging a 1 GiB
 * parameter to change 4 KiB of it then copies a few blocks, and a commit
 * that puts it back at its old offsets (a clone, sink_file.c) shares them
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

/* ---- the layout -------------------------------------------------------- */

/* Where stored slice k of e starts in its staging file (sliced layout). */
static uint64_t slice_start(const struct entry *e, uint32_t k)
{
	const struct ckpt_extent *x = e->orig->tensor.extents;
	uint64_t mask = ((uint64_t)1 << e->stage_shift) - 1, s = e->stage_off;

	for (uint32_t i = 0; i < k; i++) {
		uint64_t end = s + x[i].len;
		s = end + ((x[i + 1].src - end) & mask);
	}
	return s;
}

uint64_t ckpt_stage_pos(const struct entry *e, uint64_t off, uint64_t *run)
{
	const struct ckpt_tensor *mt;
	const struct ckpt_extent *x;
	uint32_t k;

	*run = UINT64_MAX;
	if (!e->stage_shift)
		return e->stage_off + off;
	mt = &e->orig->tensor;
	k = ckpt_tensor_extent_at(mt, off);
	x = &mt->extents[k];
	if (k + 1 < mt->nextents)
		*run = x->pos + x->len - off;
	return slice_start(e, k) + (off - x->pos);
}

uint64_t ckpt_stage_end(const struct entry *e, uint64_t size)
{
	uint64_t run;

	return size ? ckpt_stage_pos(e, size - 1, &run) + 1 : e->stage_off;
}

uint64_t ckpt_stage_size_at(const struct entry *e, uint64_t end)
{
	const struct ckpt_tensor *mt;
	uint64_t start, n;
	uint32_t k = 0;

	if (!e->stage_shift)
		return end > e->stage_off ? end - e->stage_off : 0;
	mt = &e->orig->tensor;
	while (k + 1 < mt->nextents && slice_start(e, k + 1) < end)
		k++;
	start = slice_start(e, k);
	if (end <= start) /* before the first byte */
		return 0;
	n = end - start;
	if (k + 1 < mt->nextents && n > mt->extents[k].len)
		n = mt->extents[k].len; /* in the gap after slice k */
	return mt->extents[k].pos + n;
}

/* Slices that get a gap each: a 32 GiB tensor in MindSpore's 512 MiB
 * slices.  Finding a slice's place walks the slices before it, so a
 * tensor stored in more (an odd file: thousands of tiny slices) stays
 * contiguous, its first slice aligned. */
#define SLICED_MAX 64

/* Sets e's layout for a staging file of block size blk: its first byte at
 * its source offset modulo blk, and each later stored slice too where blk
 * is a power of two and there are at most SLICED_MAX slices. */
static void choose_layout(struct entry *e, uint64_t blk)
{
	const struct ckpt_tensor *mt = e->orig ? &e->orig->tensor : NULL;

	e->stage_off = 0;
	e->stage_shift = 0;
	if (!mt || !mt->nextents || mt->bf16_from_f32) /* converted: no copy */
		return;
	e->stage_off = (uint32_t)(mt->extents[0].src % blk);
	if (mt->nextents > 1 && mt->nextents <= SLICED_MAX &&
	    (blk & (blk - 1)) == 0)
		e->stage_shift = (uint8_t)__builtin_ctzll(blk);
}

void ckpt_unstage(struct entry *e)
{
	if (e->stage_fd >= 0)
		close(e->stage_fd);
	e->stage_fd = -1;
	e->stage_off = 0;
	e->stage_shift = 0;
}

/* ---- staging ------------------------------------------------------------ */

/* The staging file being filled, for stage_piece. */
struct stage_ctx {
	int fd;
	const struct entry *e; /* its layout */
};

/* ckpt_piece_fn: copies a piece (never across a slice: pieces follow the
 * extents) into the staging file at its place; errno tells the caller why
 * it failed. */
static ckpt_err stage_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			    struct ckpt_error *err)
{
	struct stage_ctx *c = ctx;
	uint64_t run, pos = ckpt_stage_pos(c->e, at, &run);
	int r;

	r = p->fd >= 0 ? ckpt_copy_range(p->fd, p->pos, c->fd, pos, p->len)
		       : ckpt_pwrite_full(c->fd, p->mem, p->len, pos);
	return r < 0 ? ckpt_fail(err, CKPT_ERR_IO, at, "staging") : CKPT_OK;
}

ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err)
{
	struct stage_ctx c = {.fd = -1, .e = e};

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
	choose_layout(e, ckpt_block_size(c.fd));
	if (copy && e->orig && e->size &&
	    ckpt_entry_walk(e, 0, e->size, stage_piece, &c, err))
		goto fail;
	if (e->size && ftruncate(c.fd, (off_t)ckpt_stage_end(e, e->size)) < 0)
		goto fail;
	e->stage_fd = c.fd;
	return CKPT_OK;
fail:
	ckpt_fail(err, CKPT_ERR_IO, 0, "cannot stage '%s' in %s: %s", e->fname,
		  t->staging_dir, strerror(errno));
	close(c.fd);
	ckpt_unstage(e);
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
		ckpt_unstage(e); /* unlinked: its pages go, unwritten */
		e->stage_fd = fd;
		return CKPT_OK;
	}
	r = ckpt_stage(t, e, true, err);
	if (r)
		return r;
	if (ftruncate(e->stage_fd, (off_t)ckpt_stage_end(e, size)) == 0)
		return CKPT_OK;
	ckpt_fail(err, CKPT_ERR_IO, 0, "truncating '%s': %s", e->fname,
		  strerror(errno));
	if (fresh)
		ckpt_unstage(e);
	return CKPT_ERR_IO;
}
