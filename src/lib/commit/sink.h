/*
 * sink.h - where a commit's bytes go: one small interface, three writers.
 *
 * A format's encode emits the new file into a sink's emitter (format.h);
 * the sink puts the bytes into the file: through the page cache
 * (sink_file.c: copies in the kernel, starts writeback as it goes; or
 * over a clone of the old file, writing only what is not already in
 * place), with O_DIRECT from a writer thread (sink_dio.c), or encrypted
 * in blocks on all cores, also with O_DIRECT (sink_enc.c).  The commit chooses one per file written and
 * never looks at which it has.  sink.c holds what they share: progress,
 * messages, and walking an entry's pieces.
 *
 * A sink is used by one thread, with the tree locked for writing; the
 * dio and the encrypted sinks run threads of their own inside.  A sink
 * never syncs, names or replaces the file: the commit does.
 */
#ifndef CKPT_SINK_H
#define CKPT_SINK_H

#include "commit/commit.h"

struct ckpt_sink;

struct ckpt_sink_ops {
	struct ckpt_emit_ops emit; /* bytes, range, entry: what is written */
	/* Everything was emitted: write what is held back.  Not durable. */
	ckpt_err (*finish)(struct ckpt_sink *s);
	/* Stops the sink's threads and frees it; the fd stays open. */
	void (*free)(struct ckpt_sink *s);
};

/* What the commit tells a sink. */
struct ckpt_sink_conf {
	int fd;		  /* the new file, empty, written from offset 0 */
	const char *path; /* the target, for messages */
	struct ckpt_error *err;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	uint64_t total; /* plaintext bytes expected (for progress) */
};

struct ckpt_sink {
	struct ckpt_emitter em; /* what the format emits into */
	const struct ckpt_sink_ops *ops;
	struct ckpt_sink_conf c;
	uint64_t off;	   /* bytes of the file written so far */
	uint64_t plain;	   /* plaintext bytes written so far */
	uint64_t reported; /* plain at the last progress call */
};

/* The sink of an emitter the commit handed to a format. */
static inline struct ckpt_sink *ckpt_sink_of(struct ckpt_emitter *em)
{
	return (struct ckpt_sink *)em; /* em is its first member */
}

/* ---- the three sinks --------------------------------------------------- */

/* sink_file.c: through the page cache.  CKPT_OK, or CKPT_ERR_NOMEM. */
ckpt_err ckpt_sink_file_new(const struct ckpt_sink_conf *c,
			    struct ckpt_sink **out);

/* sink_file.c: over a clone of base (the old checkpoint, a regular file):
 * c->fd is made a clone of it, ranges of base emitted at their own offset
 * are left as they are, the rest is written as ckpt_sink_file_new does,
 * and the file is cut to its length at the end.  *out NULL (and CKPT_OK)
 * when the file system cannot clone base into c->fd: then use another
 * sink (c->fd is still empty).  Fails only on memory, or when the output
 * could not be emptied after a failed clone. */
ckpt_err ckpt_sink_clone_new(const struct ckpt_sink_conf *c, int base,
			     struct ckpt_sink **out);

/* sink_dio.c: with O_DIRECT, in 16 MiB chunks from a writer thread (see
 * the top of sink_dio.c).  NULL when the file system has no direct I/O,
 * or memory or a thread is short: then use the page cache instead. */
struct ckpt_sink *ckpt_sink_dio_new(const struct ckpt_sink_conf *c);

/* sink_enc.c: encrypted with key, in blocks written by ckpt_encw_run when
 * the sink finishes (with O_DIRECT where the file system allows it), then
 * read back (their headers) as a check.  Emitted
 * bytes cannot be watched: the blocks are filled out of order. */
ckpt_err ckpt_sink_enc_new(const struct ckpt_sink_conf *c,
			   const struct ckpt_key *key, struct ckpt_sink **out);

/* ---- sink.c: what the sinks share -------------------------------------- */

/* Initializes the common part of a new sink s. */
void ckpt_sink_init(struct ckpt_sink *s, const struct ckpt_sink_ops *ops,
		    const struct ckpt_sink_conf *c);

/* Finishes s (ops->finish) and, when that worked, makes the last progress
 * call. */
ckpt_err ckpt_sink_finish(struct ckpt_sink *s);

/* Frees s (NULL is allowed). */
void ckpt_sink_free(struct ckpt_sink *s);

/* n bytes at p are about to be appended: the watcher sees them, and they
 * count for progress (a call every 16 MiB). */
void ckpt_sink_account(struct ckpt_sink *s, const void *p, size_t n);

/* n bytes were copied without being seen (in the kernel): progress. */
void ckpt_sink_account_unseen(struct ckpt_sink *s, uint64_t n);

/* Reports the failed write (what, at file offset at, errno) as
 * ckpt_write_failed does; CKPT_ERR_IO. */
ckpt_err ckpt_sink_fail_at(struct ckpt_sink *s, const char *what, uint64_t at);

/* Reads n bytes of fd at pos into p; a short read is an error (EIO). */
ckpt_err ckpt_sink_read(struct ckpt_sink *s, int fd, void *p, size_t n,
			uint64_t pos);

/* The emitter's entry for the sinks that write in order: the pieces of
 * bytes [off, off+len) of e go to s's own range and bytes. */
ckpt_err ckpt_sink_walk(struct ckpt_emitter *em, const struct entry *e,
			uint64_t off, uint64_t len);

#endif /* CKPT_SINK_H */
