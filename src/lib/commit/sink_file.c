/*
 * sink_file.c - the page-cache sink: writes with pwrite, copies ranges of
 * other files in the kernel (ckpt_kernel_copy: copy_file_range, else
 * sendfile), and starts writeback of each 32 MiB as it goes
 * (sync_file_range without waiting), so the disk writes while the commit
 * copies and the final fsync finds little left to do.
 *
 * Used where O_DIRECT is not to be had (sink_dio.c says when).  While the
 * emitter is watched (a checksum) nothing is copied in the kernel: the
 * bytes are read through a buffer so the watcher sees them.  One thread,
 * no lock.
 */
#include <fcntl.h>
#include <stdlib.h>

#include "commit/sink.h"

#define WRITEBACK_STEP (32u << 20)

struct file_sink {
	struct ckpt_sink s;
	uint64_t flushed; /* writeback started for bytes [0, flushed) */
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

static ckpt_err file_finish(struct ckpt_sink *s)
{
	(void)s; /* every byte is written already */
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

ckpt_err ckpt_sink_file_new(const struct ckpt_sink_conf *c,
			    struct ckpt_sink **out)
{
	struct file_sink *f = malloc(sizeof(*f));

	*out = NULL;
	if (!f)
		return ckpt_fail(c->err, CKPT_ERR_NOMEM, 0, "out of memory");
	ckpt_sink_init(&f->s, &file_ops, c);
	f->flushed = 0;
	*out = &f->s;
	return CKPT_OK;
}
