/*
 * sink.c - what the three sinks share (sink.h): progress, the failure
 * message of a commit, reading sources, walking an entry's pieces.
 *
 * No state of its own, no lock: a sink is used by one thread.  It must
 * never decide anything a sink decides (how bytes reach the disk).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit/sink.h"

#define PROGRESS_STEP (16u << 20) /* plaintext bytes between two calls */

ckpt_err ckpt_write_failed(struct ckpt_error *err, const char *path,
			   const char *what, const uint64_t *at)
{
	int e = errno;
	char where[48] = "";

	if (at)
		snprintf(where, sizeof(where), " at offset %llu",
			 (unsigned long long)*at);
	return ckpt_fail(
		err, CKPT_ERR_IO, at ? *at : 0,
		"writing the new checkpoint %s failed (%s%s): %s; " CKPT_EDITS_KEPT,
		path, what, where, strerror(e));
}

void ckpt_sink_init(struct ckpt_sink *s, const struct ckpt_sink_ops *ops,
		    const struct ckpt_sink_conf *c)
{
	*s = (struct ckpt_sink){.em = {.ops = &ops->emit}, .ops = ops, .c = *c};
}

ckpt_err ckpt_sink_finish(struct ckpt_sink *s)
{
	ckpt_err r = s->ops->finish(s);

	if (!r && s->c.progress)
		s->c.progress(s->c.progress_ctx, s->plain,
			      s->c.total > s->plain ? s->c.total : s->plain);
	return r;
}

void ckpt_sink_free(struct ckpt_sink *s)
{
	if (s)
		s->ops->free(s);
}

void ckpt_sink_account_unseen(struct ckpt_sink *s, uint64_t n)
{
	s->plain += n;
	if (s->c.progress && s->plain - s->reported >= PROGRESS_STEP) {
		s->reported = s->plain;
		s->c.progress(s->c.progress_ctx, s->plain, s->c.total);
	}
}

void ckpt_sink_account(struct ckpt_sink *s, const void *p, size_t n)
{
	if (s->em.watch)
		s->em.watch(s->em.watch_ctx, p, n);
	ckpt_sink_account_unseen(s, n);
}

ckpt_err ckpt_sink_fail_at(struct ckpt_sink *s, const char *what, uint64_t at)
{
	return ckpt_write_failed(s->c.err, s->c.path, what, &at);
}

ckpt_err ckpt_sink_read(struct ckpt_sink *s, int fd, void *p, size_t n,
			uint64_t pos)
{
	ssize_t got = ckpt_pread_full(fd, p, n, pos);

	if (got == (ssize_t)n)
		return CKPT_OK;
	if (got >= 0)
		errno = EIO;
	return ckpt_sink_fail_at(s, "read of the source", s->off);
}

struct walk {
	struct ckpt_emitter *em;
	bool wrote; /* the failure, if any, was the output's */
};

/* ckpt_piece_fn: appends a piece to the output. */
static ckpt_err walk_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			   struct ckpt_error *err)
{
	struct walk *w = ctx;
	ckpt_err r = p->fd >= 0
			     ? w->em->ops->range(w->em, p->fd, p->pos, p->len)
			     : w->em->ops->bytes(w->em, p->mem, p->len);

	(void)at;
	(void)err; /* the sink's, the same */
	w->wrote = r != CKPT_OK;
	return r;
}

ckpt_err ckpt_sink_walk(struct ckpt_emitter *em, const struct entry *e,
			uint64_t off, uint64_t len)
{
	struct ckpt_sink *s = ckpt_sink_of(em);
	struct walk w = {.em = em};
	ckpt_err r = ckpt_entry_walk(e, off, len, walk_piece, &w, s->c.err);

	if (r && !w.wrote)
		return ckpt_sink_fail_at(s, "reading parameter data", s->off);
	return r;
}
