/*
 * sink_enc.c - the encrypted sink: the stream the format emits is only
 * described while it is emitted (bytes copied, ranges of files and of
 * entries remembered: crypt/encwriter.c), then encrypted into blocks on
 * all cores when the sink finishes, and the blocks' headers are read back
 * as a check that every block is where the next reader will look for it.
 * The blocks go past the page cache (O_DIRECT) where the file system
 * allows it, as a plain commit's bytes do (sink_dio.c); encwriter.c says
 * how.  An encrypted file never shares blocks with the old one (every
 * block has a new IV), so there is no clone to start from.
 *
 * The ckpt_encw_* API is crypt/'s; this file only adapts it to a sink.
 * The sources must stay unchanged until the sink finishes (the tree is
 * locked for writing meanwhile).  It cannot show emitted bytes to a
 * watcher, since blocks are filled out of order: an emitter that is
 * watched is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commit/sink.h"
#include "crypt/crypt.h"

struct enc_sink {
	struct ckpt_sink s;
	struct ckpt_encw *w;
	const struct ckpt_key *key;
};

static struct enc_sink *enc_of(struct ckpt_emitter *em)
{
	return (struct enc_sink *)ckpt_sink_of(em); /* s is its first member */
}

/* CKPT_OK unless em is watched, which this sink cannot honour. */
static ckpt_err unwatched(struct ckpt_emitter *em)
{
	if (!em->watch)
		return CKPT_OK;
	return ckpt_fail(ckpt_sink_of(em)->c.err, CKPT_ERR_UNSUPPORTED, 0,
			 "internal error: an encrypted stream cannot be "
			 "checksummed as it is written; " CKPT_EDITS_KEPT);
}

static ckpt_err enc_bytes(struct ckpt_emitter *em, const void *buf, size_t n)
{
	ckpt_err r = unwatched(em);

	return r ? r
		 : ckpt_encw_bytes(enc_of(em)->w, buf, n,
				   ckpt_sink_of(em)->c.err);
}

static ckpt_err enc_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			  uint64_t len)
{
	ckpt_err r = unwatched(em);

	return r ? r
		 : ckpt_encw_fd(enc_of(em)->w, fd, pos, len,
				ckpt_sink_of(em)->c.err);
}

static ckpt_err enc_entry(struct ckpt_emitter *em, const struct entry *e,
			  uint64_t off, uint64_t len)
{
	ckpt_err r = unwatched(em);

	return r ? r
		 : ckpt_encw_fill(enc_of(em)->w, e, off, len,
				  ckpt_sink_of(em)->c.err);
}

/* ckpt_piece_fn: copies a piece into the buffer at ctx. */
static ckpt_err fill_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			   struct ckpt_error *err)
{
	uint8_t **buf = ctx;
	size_t done;
	ckpt_err r = ckpt_pieces_copy(p, 1, *buf, &done, err);

	(void)at;
	*buf += done;
	return r;
}

/* ckpt_encw_fill_fn for a file entry: bytes [off, off+len) of it. */
static ckpt_err fill_entry(const void *ctx, uint64_t off, size_t len,
			   uint8_t *buf, struct ckpt_error *err)
{
	const struct entry *e = ctx;
	ckpt_err r = ckpt_entry_walk(e, off, len, fill_piece, &buf, err);

	if (r)
		ckpt_fail(err, r, off,
			  "reading parameter '%s' for the new "
			  "checkpoint failed: %s; " CKPT_EDITS_KEPT,
			  e->fname, strerror(errno));
	return r;
}

/* Reads the block headers of the output back: there must be nblocks of
 * them, up to end. */
static ckpt_err check_blocks(int fd, const char *path,
			     const struct ckpt_key *key, uint64_t end,
			     uint64_t nblocks, struct ckpt_error *err)
{
	uint64_t off = 0, n = 0;
	struct ckpt_enc_block b;

	while (off < end) {
		ckpt_err e =
			ckpt_enc_read_header(fd, path, off, end, key, &b, err);
		if (e)
			return e;
		off = b.cipher_off + b.cipher_len;
		n++;
	}
	if (n != nblocks)
		return ckpt_fail(err, CKPT_ERR_IO, off,
				 "internal error: %s "
				 "holds %llu encrypted blocks, %llu were "
				 "written; " CKPT_EDITS_KEPT,
				 path, (unsigned long long)n,
				 (unsigned long long)nblocks);
	return CKPT_OK;
}

static ckpt_err enc_finish(struct ckpt_sink *s)
{
	struct enc_sink *es = (struct enc_sink *)s;
	uint64_t blocks;
	ckpt_err r;

	s->plain = ckpt_encw_total(es->w);
	r = ckpt_encw_run(es->w, s->c.fd, 0, s->c.path, s->c.progress,
			  s->c.progress_ctx, &s->off, &blocks, s->c.err);
	if (!r)
		r = check_blocks(s->c.fd, s->c.path, es->key, s->off, blocks,
				 s->c.err);
	return r;
}

static void enc_free(struct ckpt_sink *s)
{
	struct enc_sink *es = (struct enc_sink *)s;

	ckpt_encw_free(es->w);
	free(es);
}

static const struct ckpt_sink_ops enc_ops = {
	.emit = {.bytes = enc_bytes, .range = enc_range, .entry = enc_entry},
	.finish = enc_finish,
	.free = enc_free,
};

ckpt_err ckpt_sink_enc_new(const struct ckpt_sink_conf *c,
			   const struct ckpt_key *key, struct ckpt_sink **out)
{
	struct enc_sink *es = malloc(sizeof(*es));
	ckpt_err r;

	*out = NULL;
	if (!es)
		return ckpt_fail(c->err, CKPT_ERR_NOMEM, 0, "out of memory");
	ckpt_sink_init(&es->s, &enc_ops, c);
	es->key = key;
	r = ckpt_encw_new(key, fill_entry, &es->w, c->err);
	if (r) {
		free(es);
		return r;
	}
	*out = &es->s;
	return CKPT_OK;
}
