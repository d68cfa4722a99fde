/*
 * encwriter.c - a plaintext stream to encrypted blocks, on all cores.
 *
 * The commit first describes the plaintext stream as a list of segments
 * (bytes held here, a range of a file, or a range the caller fills on
 * demand) without reading any of it.  The stream is then cut into blocks
 * of CKPT_ENC_BLOCK bytes, the last one shorter, so every block's place in
 * the output is known in advance.  ckpt_crypto_threads() threads take
 * blocks in turn; each gathers its block's plaintext 256 KiB at a time
 * into a small buffer, encrypts it there in place while it is in the CPU's
 * cache, writes the ciphertext at its offset, and writes the block header
 * (IV, GCM tag, lengths) last.  No block-sized buffer is ever needed: a
 * 64 MiB buffer was measured 2.5-6 times slower to write from than a
 * cache-sized one on the machines this runs on (docs/performance.md).
 *
 * The first failure in stream order is the one reported.  Buffers that
 * held plaintext are wiped before they are freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"


struct seg {
	uint64_t start; /* offset in the plaintext stream */
	uint64_t len;
	enum { SEG_MEM, SEG_FD, SEG_FILL } kind;
	int fd;
	uint64_t pos;    /* MEM: offset in the arena; FD, FILL: source offset */
	const void *ctx; /* FILL */
};

struct ckpt_encw {
	const struct ckpt_key *key;
	ckpt_encw_fill_fn fill;
	struct seg *segs;
	size_t nsegs, cap;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	uint64_t total;

	/* while running */
	int fd;
	uint64_t file_off;
	const char *path;
	uint64_t done; /* plaintext bytes of finished blocks */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

ckpt_err ckpt_encw_new(const struct ckpt_key *key, ckpt_encw_fill_fn fill,
		       struct ckpt_encw **out, struct ckpt_error *err)
{
	struct ckpt_encw *w = calloc(1, sizeof(*w));

	*out = w;
	if (!w)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	w->key = key;
	w->fill = fill;
	return CKPT_OK;
}

/* Appends a segment, merged with the last one when it continues it. */
static ckpt_err add(struct ckpt_encw *w, struct seg s, struct ckpt_error *err)
{
	struct seg *l = w->nsegs ? &w->segs[w->nsegs - 1] : NULL;

	if (!s.len)
		return CKPT_OK;
	s.start = w->total;
	w->total += s.len;
	if (l && l->kind == s.kind && l->fd == s.fd && l->ctx == s.ctx &&
	    l->pos + l->len == s.pos) {
		l->len += s.len;
		return CKPT_OK;
	}
	if (w->nsegs == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		struct seg *n = realloc(w->segs, cap * sizeof(*n));
		if (!n)
			return ckpt_fail(err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		w->segs = n;
		w->cap = cap;
	}
	w->segs[w->nsegs++] = s;
	return CKPT_OK;
}

ckpt_err ckpt_encw_bytes(struct ckpt_encw *w, const void *buf, size_t n,
			 struct ckpt_error *err)
{
	if (w->arena_cap - w->arena_len < n) {
		size_t cap = w->arena_cap ? w->arena_cap : 4096;
		uint8_t *a;
		while (cap - w->arena_len < n)
			cap *= 2;
		a = malloc(cap);
		if (!a)
			return ckpt_fail(err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		if (w->arena_len)
			memcpy(a, w->arena, w->arena_len);
		if (w->arena)
			OPENSSL_cleanse(w->arena, w->arena_len);
		free(w->arena);
		w->arena = a;
		w->arena_cap = cap;
	}
	if (n)
		memcpy(w->arena + w->arena_len, buf, n);
	w->arena_len += n;
	return add(w, (struct seg){.kind = SEG_MEM, .fd = -1,
				   .pos = w->arena_len - n, .len = n},
		   err);
}

ckpt_err ckpt_encw_fd(struct ckpt_encw *w, int fd, uint64_t pos,
		      uint64_t len, struct ckpt_error *err)
{
	return add(w, (struct seg){.kind = SEG_FD, .fd = fd, .pos = pos,
				   .len = len},
		   err);
}

ckpt_err ckpt_encw_fill(struct ckpt_encw *w, const void *ctx, uint64_t off,
			uint64_t len, struct ckpt_error *err)
{
	return add(w, (struct seg){.kind = SEG_FILL, .fd = -1, .ctx = ctx,
				   .pos = off, .len = len},
		   err);
}

uint64_t ckpt_encw_total(const struct ckpt_encw *w)
{
	return w->total;
}

/* The segment holding stream offset p. */
static size_t seg_at(const struct ckpt_encw *w, uint64_t p)
{
	size_t lo = 0, hi = w->nsegs;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->segs[mid].start <= p)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Copies stream bytes [p, p+n) into buf. */
static ckpt_err gather(const struct ckpt_encw *w, uint64_t p, size_t n,
		       uint8_t *buf, struct ckpt_error *err)
{
	for (size_t i = seg_at(w, p); n; i++) {
		const struct seg *s = &w->segs[i];
		uint64_t in = p - s->start;
		size_t k = s->len - in < n ? (size_t)(s->len - in) : n;
		ssize_t r;
		ckpt_err e;

		switch (s->kind) {
		case SEG_MEM:
			memcpy(buf, w->arena + s->pos + in, k);
			break;
		case SEG_FD:
			r = ckpt_pread_full(s->fd, buf, k, s->pos + in);
			if (r != (ssize_t)k) {
				if (r >= 0)
					errno = EIO;
				return ckpt_fail(err, CKPT_ERR_IO, p,
						 "writing the new checkpoint "
						 "%s failed (read of the "
						 "source): %s; the original is "
						 "untouched and all edits are "
						 "kept", w->path,
						 strerror(errno));
			}
			break;
		case SEG_FILL:
			e = w->fill(s->ctx, s->pos + in, k, buf, err);
			if (e)
				return e;
			break;
		}
		buf += k;
		p += k;
		n -= k;
	}
	return CKPT_OK;
}

static ckpt_err write_fail(const struct ckpt_encw *w, uint64_t off,
			   struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_IO, off,
			 "writing the new checkpoint %s failed (write at "
			 "offset %llu): %s; the original is untouched and all "
			 "edits are kept", w->path, (unsigned long long)off,
			 strerror(errno));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Plaintext bytes of block k. */
static size_t block_plain(const struct ckpt_encw *w, uint64_t k)
{
	uint64_t left = w->total - k * CKPT_ENC_BLOCK;

	return left < CKPT_ENC_BLOCK ? (size_t)left : CKPT_ENC_BLOCK;
}

/* ckpt_crypt_job: encrypts and writes block k, its header last. */
static ckpt_err do_block(void *arg, uint64_t k, struct ckpt_crypt_scratch *s,
			 struct ckpt_error *err)
{
	const struct ckpt_encw *w = arg;
	EVP_CIPHER_CTX *ctx = s->ctx;
	uint8_t *chunk = s->chunk;
	const struct ckpt_key *key = w->key;
	bool gcm = key->mode == CKPT_ENC_AES_GCM;
	uint64_t p0 = k * CKPT_ENC_BLOCK;
	size_t plen = block_plain(w, k);
	size_t hdr = ckpt_enc_header_len(key), p = gcm ? 20 : 4;
	uint64_t boff = w->file_off + k * ckpt_enc_block_len(key,
							    CKPT_ENC_BLOCK);
	uint64_t coff = boff + hdr, clen = 0;
	uint8_t h[48] = {0}, fin[32];
	int n = 0;

	if (RAND_bytes(h + p + 8, 16) != 1 ||
	    !EVP_CIPHER_CTX_reset(ctx) ||
	    !EVP_EncryptInit_ex(ctx, ckpt_enc_cipher(key), NULL, NULL,
				NULL) ||
	    (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16,
					 NULL)) ||
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, key->bytes, h + p + 8) ||
	    (!gcm && !EVP_CIPHER_CTX_set_padding(ctx, 1)))
		goto refused;
	for (size_t done = 0; done < plen;) {
		size_t c = plen - done < CKPT_CRYPT_CHUNK ? plen - done
							  : CKPT_CRYPT_CHUNK;
		ckpt_err e = gather(w, p0 + done, c, chunk, err);
		if (e)
			return e;
		if (!EVP_EncryptUpdate(ctx, chunk, &n, chunk, (int)c))
			goto refused;
		if (n && ckpt_pwrite_full(w->fd, chunk, (size_t)n,
					  coff + clen) < 0)
			return write_fail(w, coff + clen, err);
		clen += (uint64_t)n;
		done += c;
	}
	if (!EVP_EncryptFinal_ex(ctx, fin, &n) ||
	    (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
					 h + 4)))
		goto refused;
	if (n && ckpt_pwrite_full(w->fd, fin, (size_t)n, coff + clen) < 0)
		return write_fail(w, coff + clen, err);
	clen += (uint64_t)n;
	if (hdr + clen != ckpt_enc_block_len(key, plen))
		return ckpt_fail(err, CKPT_ERR_IO, boff, "internal error: a "
				 "block of %zu bytes encrypted to %llu", plen,
				 (unsigned long long)clen);
	put_le32(h, ckpt_enc_magic(key->mode));
	put_le32(h + p, 24 + (uint32_t)clen);
	put_le32(h + p + 4, 16);
	put_le32(h + p + 24, (uint32_t)clen);
	if (ckpt_pwrite_full(w->fd, h, hdr, boff) < 0)
		return write_fail(w, boff, err);
	/* start the disk on this block now; the commit's fsync waits for it
	 * (and reports its errors) */
	(void)sync_file_range(w->fd, (off64_t)boff, (off64_t)(hdr + clen),
			      SYNC_FILE_RANGE_WRITE);
	return CKPT_OK;
refused:
	return ckpt_fail(err, CKPT_ERR_IO, boff, "encryption failed "
			 "(OpenSSL)");
}

/* After block k (under the pool's lock): progress. */
static void block_done(void *arg, uint64_t k)
{
	struct ckpt_encw *w = arg;

	w->done += block_plain(w, k);
	if (w->progress)
		w->progress(w->progress_ctx, w->done, w->total);
}

ckpt_err ckpt_encw_run(struct ckpt_encw *w, int fd, uint64_t off,
		       const char *path,
		       void (*progress)(void *ctx, uint64_t done,
					uint64_t total),
		       void *progress_ctx, uint64_t *end, uint64_t *blocks,
		       struct ckpt_error *err)
{
	uint64_t n = (w->total + CKPT_ENC_BLOCK - 1) / CKPT_ENC_BLOCK;

	w->fd = fd;
	w->file_off = off;
	w->path = path;
	w->done = 0;
	w->progress = progress;
	w->progress_ctx = progress_ctx;
	*blocks = n;
	*end = off + (n ? (n - 1) * ckpt_enc_block_len(w->key, CKPT_ENC_BLOCK) +
				  ckpt_enc_block_len(w->key,
						     block_plain(w, n - 1))
			: 0);
	return ckpt_crypt_parallel(n, ckpt_crypto_threads(),
				   w->total < CKPT_CRYPT_CHUNK
					   ? (size_t)w->total
					   : CKPT_CRYPT_CHUNK,
				   do_block, block_done, w, err);
}

void ckpt_encw_free(struct ckpt_encw *w)
{
	if (!w)
		return;
	if (w->arena)
		OPENSSL_cleanse(w->arena, w->arena_len);
	free(w->arena);
	free(w->segs);
	free(w);
}
