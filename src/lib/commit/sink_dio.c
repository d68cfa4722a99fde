/*
 * sink_dio.c - the O_DIRECT sink: writing a file front to back with
 * O_DIRECT, by a thread of its own.
 *
 * A plain commit writes through it: a commit writes a whole checkpoint
 * once and does not read it back, and on the VMs we measured on, filling
 * fresh page-cache pages ran at 60-200 MiB/s while the disk took 400-500
 * MiB/s direct (docs/performance.md, section 6).  The new file is then not
 * in the page cache; the old one's pages go with it.  The sources are read
 * straight into the chunk buffers (and shown to a watcher there).
 *
 * The caller fills one 16 MiB chunk while the writer thread writes the
 * previous one, so reading the sources (often from the disk themselves)
 * overlaps writing the output.  Every direct write is a whole chunk at a
 * multiple of the chunk size from a buffer aligned to 1 MiB, which suits
 * every logical block size up to 1 MiB; the last, shorter chunk goes
 * through the page cache.  A write the file system refuses (EINVAL:
 * stricter alignment; EOPNOTSUPP) is made again through the page cache,
 * and so is every later chunk.  The first error stops the writing; it is
 * reported by the next call, with the offset of the chunk that failed.
 *
 * Locking: mu guards what the writer thread and the sink's one caller
 * share (below); the caller's side is used by one thread only.  The sink
 * must never be freed while its thread may still write to the fd:
 * dio_free joins it first.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit/sink.h"

#define CHUNK (16u << 20)
#define ALIGN (1u << 20)

struct ckpt_dio {
	struct ckpt_sink s; /* first: the sink this is */
	int fd;
	uint8_t *buf[2];
	unsigned cur; /* the buffer the caller fills */
	size_t len;   /* bytes in it */
	uint64_t off; /* file offset of buf[cur][0] */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu: */
	bool pending; /* buf[!cur] waits for the writer or is written */
	bool stop;
	int err;	 /* errno of the first failure, 0 if none */
	uint64_t err_at; /* offset of the chunk that failed */
};

/* Writes len bytes of p at off; falls back to the page cache for good
 * when a direct write is refused.  0 or an errno. */
static int write_chunk(struct ckpt_dio *d, const uint8_t *p, size_t len,
		       uint64_t off)
{
	if (ckpt_pwrite_direct(d->fd, p, len, off) < 0)
		return errno;
	/* what went through the page cache (after a refusal): start the
	 * writeback now, as sink_file.c does; a no-op after a direct write */
	(void)sync_file_range(d->fd, (off64_t)off, (off64_t)len,
			      SYNC_FILE_RANGE_WRITE);
	return 0;
}

static void *writer(void *arg)
{
	struct ckpt_dio *d = arg;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->pending && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (!d->pending)
			break;
		/* buf[!cur] and off - CHUNK are stable while pending; no chunk
		 * is handed over after an error (dio_fill) */
		const uint8_t *p = d->buf[!d->cur];
		uint64_t at = d->off - CHUNK;
		pthread_mutex_unlock(&d->mu);
		int e = write_chunk(d, p, CHUNK, at);
		pthread_mutex_lock(&d->mu);
		if (e) {
			d->err = e;
			d->err_at = at;
		}
		d->pending = false;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* Waits until the writer is idle; returns the first error (0 if none). */
static int wait_idle(struct ckpt_dio *d, uint64_t *at)
{
	int e;

	pthread_mutex_lock(&d->mu);
	while (d->pending)
		pthread_cond_wait(&d->cv, &d->mu);
	e = d->err;
	*at = d->err_at;
	pthread_mutex_unlock(&d->mu);
	return e;
}

/* Switches fd to O_DIRECT and starts the writer, which will write the file
 * from offset 0; NULL as ckpt_sink_dio_new. */
static struct ckpt_dio *dio_start(int fd)
{
	struct ckpt_dio *d = calloc(1, sizeof(*d));

	if (!d)
		goto fail;
	d->fd = fd;
	d->buf[0] = aligned_alloc(ALIGN, CHUNK);
	d->buf[1] = aligned_alloc(ALIGN, CHUNK);
	if (!d->buf[0] || !d->buf[1])
		goto fail;
	if (ckpt_set_direct(fd, true) < 0)
		goto fail;
	if (pthread_mutex_init(&d->mu, NULL))
		goto fail_fl;
	if (pthread_cond_init(&d->cv, NULL))
		goto fail_mu;
	if (pthread_create(&d->thread, NULL, writer, d))
		goto fail_cv;
	return d;
fail_cv:
	pthread_cond_destroy(&d->cv);
fail_mu:
	pthread_mutex_destroy(&d->mu);
fail_fl:
	(void)ckpt_set_direct(fd, false);
fail:
	if (d) {
		free(d->buf[0]);
		free(d->buf[1]);
	}
	free(d);
	return NULL;
}

/* Where the next bytes go: *room (> 0) bytes free at the returned pointer,
 * valid until the next dio_fill. */
static uint8_t *dio_room(struct ckpt_dio *d, size_t *room)
{
	*room = CHUNK - d->len;
	return d->buf[d->cur] + d->len;
}

/* Appends the n (<= room) bytes just put at dio_room's pointer; a full
 * chunk goes to the writer.  0, or -1 with errno and *at (the offset of
 * the chunk) of the first failed write. */
static int dio_fill(struct ckpt_dio *d, size_t n, uint64_t *at)
{
	int e;

	d->len += n;
	if (d->len < CHUNK)
		return 0;
	pthread_mutex_lock(&d->mu);
	while (d->pending)
		pthread_cond_wait(&d->cv, &d->mu);
	e = d->err;
	*at = d->err_at;
	if (!e) {
		d->cur = !d->cur;
		d->len = 0;
		d->off += CHUNK;
		d->pending = true;
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mu);
	if (e)
		errno = e;
	return e ? -1 : 0;
}

/* Waits for the writer and writes the rest through the page cache.  0, or
 * -1 with errno and *at as dio_fill.  The data is not yet durable. */
static int dio_finish(struct ckpt_dio *d, uint64_t *at)
{
	int e = wait_idle(d, at);

	if (!e && d->len) {
		*at = d->off;
		if (ckpt_set_direct(d->fd, false) < 0)
			return -1;
		e = write_chunk(d, d->buf[d->cur], d->len, d->off);
		if (!e) {
			d->off += d->len;
			d->len = 0;
		}
	}
	if (e)
		errno = e;
	return e ? -1 : 0;
}

/* Stops the writer, waiting for a write in progress, and frees d. */
static void dio_free(struct ckpt_dio *d)
{
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d->buf[0]);
	free(d->buf[1]);
	free(d);
}

/* ---- the sink ---------------------------------------------------------- */

static struct ckpt_dio *dio_of(struct ckpt_emitter *em)
{
	return (struct ckpt_dio *)ckpt_sink_of(em); /* s is its first member */
}

/* n bytes were put where dio_room pointed: they are part of the output
 * now. */
static ckpt_err put(struct ckpt_dio *d, size_t n)
{
	uint64_t at;

	d->s.off += n;
	if (dio_fill(d, n, &at) < 0)
		return ckpt_sink_fail_at(&d->s, "write", at);
	return CKPT_OK;
}

static ckpt_err dio_bytes(struct ckpt_emitter *em, const void *buf, size_t n)
{
	struct ckpt_dio *d = dio_of(em);
	const uint8_t *p = buf;

	ckpt_sink_account(&d->s, buf, n);
	while (n) {
		size_t room, k;
		uint8_t *dst = dio_room(d, &room);
		ckpt_err r;
		k = room < n ? room : n;
		memcpy(dst, p, k);
		r = put(d, k);
		if (r)
			return r;
		p += k;
		n -= k;
	}
	return CKPT_OK;
}

/* Appends len bytes of fd at pos, read straight into the chunk buffer. */
static ckpt_err dio_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			  uint64_t len)
{
	struct ckpt_dio *d = dio_of(em);

	while (len) {
		size_t room, n;
		uint8_t *p = dio_room(d, &room);
		ckpt_err r;
		n = room < len ? room : (size_t)len;
		r = ckpt_sink_read(&d->s, fd, p, n, pos);
		if (r)
			return r;
		ckpt_sink_account(&d->s, p, n);
		r = put(d, n);
		if (r)
			return r;
		pos += n;
		len -= n;
	}
	return CKPT_OK;
}

static ckpt_err sink_finish(struct ckpt_sink *s)
{
	uint64_t at;

	if (dio_finish((struct ckpt_dio *)s, &at) < 0)
		return ckpt_sink_fail_at(s, "write", at);
	return CKPT_OK;
}

/* Also leaves the fd without O_DIRECT: it is read normally from now on. */
static void sink_free(struct ckpt_sink *s)
{
	int fd = s->c.fd;

	dio_free((struct ckpt_dio *)s); /* its thread may still write */
	(void)ckpt_set_direct(fd, false);
}

static const struct ckpt_sink_ops dio_ops = {
	.emit = {.bytes = dio_bytes,
		 .range = dio_range,
		 .entry = ckpt_sink_walk},
	.finish = sink_finish,
	.free = sink_free,
};

struct ckpt_sink *ckpt_sink_dio_new(const struct ckpt_sink_conf *c)
{
	struct ckpt_dio *d = dio_start(c->fd);

	if (!d)
		return NULL;
	ckpt_sink_init(&d->s, &dio_ops, c);
	return &d->s;
}
