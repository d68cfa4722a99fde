/*
 * sink_file.c - the page-cache sink: writes with pwrite, copies ranges of
 * other files in the kernel (ckpt_kernel_copy: copy_file_range, else
 * sendfile), and starts writeback of each 32 MiB as it goes
 * (sync_file_range without waiting), so the disk writes while the commit
 * copies and the final fsync finds little left to do.
 *
 * Used where O_DIRECT is not to be had (sink_dio.c says when), and over a
 * clone (ckpt_sink_clone_new): the new file starts as a clone of the old
 * checkpoint (FICLONE), sharing all its blocks; a range of the old file
 * emitted at its own offset is then already there and is skipped, and
 * everything else is written as above.  A write into a shared block is
 * copied on write by the file system, so the old file never changes; the
 * whole blocks a write covers are punched out of the clone first
 * (unshare_blocks), since filling fresh blocks is about three times faster on
 * XFS than copying shared ones on write.  A
 * range of the old file at another offset is copied in the kernel, which
 * shares the blocks when both offsets are as aligned to the block size
 * (its head and tail, up to the block boundaries, are copied apart); so
 * is a staged parameter, whose staging file shares the blocks it did not
 * change with the old file (stage.c).  At the end the file is cut to what
 * was emitted.
 *
 * While the emitter is watched (a checksum) nothing is copied in the
 * kernel: the bytes are read through a buffer so the watcher sees them
 * (skipped ranges too, which are read but not written).  One thread, no
 * lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commit/sink.h"

#define WRITEBACK_STEP (32u << 20)

struct file_sink {
	struct ckpt_sink s;
	uint64_t flushed;  /* writeback started for bytes [0, flushed) */
	int base;	   /* the file the output is a clone of, or -1 */
	uint64_t base_len; /* its size: what the output held at first */
	uint64_t blk;	   /* the output's block size (clones only) */
};

/* Starts writeback of what was written since the last step.  An error
 * here is ignored: the fsync that follows reports it. */
static void writeback(struct file_sink *f)
{
	if (f->s.off - f->flushed < WRITEBACK_STEP)
		return;
	(void)sync_file_range(f->s.c.fd, (off64_t)f->flushed,
			      (off64_t)(f->s.off - f->flushed),
			      SYNC_FILE_RANGE_WRITE);
	f->flushed = f->s.off;
}

static ckpt_err file_bytes(struct ckpt_emitter *em, const void *buf, size_t n)
{
	struct file_sink *f = (struct file_sink *)ckpt_sink_of(em);

	ckpt_sink_account(&f->s, buf, n);
	if (ckpt_pwrite_full(f->s.c.fd, buf, n, f->s.off) < 0)
		return ckpt_sink_fail_at(&f->s, "write", f->s.off);
	f->s.off += n;
	writeback(f);
	return CKPT_OK;
}

/* Appends len bytes of fd at pos: in the kernel unless watched; what the
 * kernel does not copy goes through a buffer. */
static ckpt_err file_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			   uint64_t len)
{
	struct file_sink *f = (struct file_sink *)ckpt_sink_of(em);
	char buf[1 << 16];

	while (len && !em->watch) {
		ssize_t n = ckpt_kernel_copy(fd, pos, f->s.c.fd, f->s.off, len);
		if (n == 0)
			break;
		if (n < 0)
			return ckpt_sink_fail_at(&f->s, "copy in the kernel",
						 f->s.off);
		pos += (uint64_t)n;
		f->s.off += (uint64_t)n;
		len -= (uint64_t)n;
		ckpt_sink_account_unseen(&f->s, (uint64_t)n);
		writeback(f);
	}
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ckpt_err e = ckpt_sink_read(&f->s, fd, buf, n, pos);
		if (!e)
			e = file_bytes(em, buf, n);
		if (e)
			return e;
		pos += n;
		len -= n;
	}
	return CKPT_OK;
}

/* Appends len bytes of the old file at pos, which the output holds
 * already at the same offset: the watcher reads them, nobody writes. */
static ckpt_err keep_range(struct file_sink *f, uint64_t pos, uint64_t len)
{
	char buf[1 << 16];

	while (len && f->s.em.watch) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ckpt_err e = ckpt_sink_read(&f->s, f->base, buf, n, pos);
		if (e)
			return e;
		ckpt_sink_account(&f->s, buf, n);
		pos += n;
		len -= n;
		f->s.off += n;
	}
	ckpt_sink_account_unseen(&f->s, len);
	f->s.off += len;
	return CKPT_OK;
}

/* Before len bytes are written over the clone at the output's offset:
 * the whole blocks they cover are punched out, so that the writes fill
 * fresh blocks instead of copying shared ones on write (deleting the
 * first parameter of a 4 GiB checkpoint on XFS: 7.9 s instead of 22 s,
 * docs/performance.md).  The blocks at the ends, which also hold bytes
 * kept or written before, stay.  A failure costs only the speed. */
static void unshare_blocks(struct file_sink *f, uint64_t len)
{
	uint64_t off = f->s.off;
	uint64_t start = (off + f->blk - 1) / f->blk * f->blk;
	uint64_t end = (off + len) / f->blk * f->blk;

	if (off < f->base_len && end > start)
		(void)fallocate(f->s.c.fd,
				FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)start, (off_t)(end - start));
}

/* The bytes emitter of a clone: over unshared blocks. */
static ckpt_err clone_bytes(struct ckpt_emitter *em, const void *buf, size_t n)
{
	unshare_blocks((struct file_sink *)ckpt_sink_of(em), n);
	return file_bytes(em, buf, n);
}

/* The range emitter of a clone: skips what is already in place, copies
 * the rest with the whole blocks of a run that moved by whole blocks
 * apart from its ends, so that the kernel can share them: runs of the old
 * file, and of a staging file on the same file system, whose entry
 * starts at its old offset modulo the block (stage.c). */
static ckpt_err clone_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			    uint64_t len)
{
	struct file_sink *f = (struct file_sink *)ckpt_sink_of(em);
	uint64_t head, mid;
	ckpt_err r;

	if (fd == f->base && pos == f->s.off && pos + len <= f->base_len)
		return keep_range(f, pos, len);
	unshare_blocks(f, len);
	if (em->watch ||
	    !ckpt_block_split(pos, f->s.off, len, f->blk, &head, &mid))
		return file_range(em, fd, pos, len);
	r = file_range(em, fd, pos, head);
	if (!r && mid)
		r = file_range(em, fd, pos + head, mid);
	if (!r)
		r = file_range(em, fd, pos + head + mid, len - head - mid);
	return r;
}

/* Every byte is written already; a clone is cut to the bytes emitted. */
static ckpt_err file_finish(struct ckpt_sink *s)
{
	struct file_sink *f = (struct file_sink *)s;

	if (f->base >= 0 && s->off < f->base_len &&
	    ftruncate(s->c.fd, (off_t)s->off) < 0)
		return ckpt_sink_fail_at(s, "truncate", s->off);
	return CKPT_OK;
}

static void file_free(struct ckpt_sink *s)
{
	free(s);
}

static const struct ckpt_sink_ops file_ops = {
	.emit = {.bytes = file_bytes,
		 .range = file_range,
		 .entry = ckpt_sink_walk},
	.finish = file_finish,
	.free = file_free,
};

static const struct ckpt_sink_ops clone_ops = {
	.emit = {.bytes = clone_bytes,
		 .range = clone_range,
		 .entry = ckpt_sink_walk},
	.finish = file_finish,
	.free = file_free,
};

/* A new file sink with ops, over base (or -1) of base_len bytes. */
static ckpt_err new_sink(const struct ckpt_sink_conf *c,
			 const struct ckpt_sink_ops *ops, int base,
			 uint64_t base_len, uint64_t blk,
			 struct ckpt_sink **out)
{
	struct file_sink *f = malloc(sizeof(*f));

	*out = NULL;
	if (!f)
		return ckpt_fail(c->err, CKPT_ERR_NOMEM, 0, "out of memory");
	ckpt_sink_init(&f->s, ops, c);
	f->flushed = 0;
	f->base = base;
	f->base_len = base_len;
	f->blk = blk;
	*out = &f->s;
	return CKPT_OK;
}

ckpt_err ckpt_sink_file_new(const struct ckpt_sink_conf *c,
			    struct ckpt_sink **out)
{
	return new_sink(c, &file_ops, -1, 0, 0, out);
}

/* Leaves the output empty again after a clone that failed or is not
 * used; CKPT_OK, or the failure (the output holds garbage then). */
static ckpt_err unclone(const struct ckpt_sink_conf *c)
{
	struct stat st;

	if (fstat(c->fd, &st) == 0 && st.st_size == 0)
		return CKPT_OK;
	if (ftruncate(c->fd, 0) == 0)
		return CKPT_OK;
	return ckpt_write_failed(c->err, c->path, "emptying a failed clone",
				 NULL);
}

ckpt_err ckpt_sink_clone_new(const struct ckpt_sink_conf *c, int base,
			     struct ckpt_sink **out)
{
	struct stat st;
	ckpt_err r;

	*out = NULL;
	if (fstat(base, &st) < 0 || !S_ISREG(st.st_mode))
		return CKPT_OK;
	if (ckpt_clone_file(base, c->fd) < 0)
		return unclone(c);
	r = new_sink(c, &clone_ops, base, (uint64_t)st.st_size,
		     ckpt_block_size(c->fd), out);
	if (r && unclone(c))
		r = CKPT_ERR_IO;
	return r;
}
