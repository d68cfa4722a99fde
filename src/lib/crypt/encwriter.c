/*
 * encwriter.c - a plaintext stream to encrypted blocks, on all cores.
 *
 * The commit first describes the plaintext stream as a list of segments
 * (bytes held here, a range of a file, or a range the caller fills on
 * demand) without reading any of it.  The stream is then cut into blocks
 * of CKPT_ENC_BLOCK bytes, the last one shorter, so every block's place in
 * the output is known in advance.  ckpt_crypto_threads() threads take
 * blocks in turn; each gathers its block's plaintext 256 KiB at a time
 * into a small buffer and encrypts it there in place while it is in the
 * CPU's cache.  No block-sized buffer is ever needed: a 64 MiB buffer was
 * measured 2.5-6 times slower to write from than a cache-sized one on the
 * machines this runs on (docs/performance.md).
 *
 * The ciphertext is written with O_DIRECT, as a plain commit's is
 * (commit/sink_dio.c): past the page cache, whose fresh pages are slow to
 * fill on these machines.  Blocks do not start on a page (a header plus
 * 64 MiB each), so a block is cut in three: its head, from its start (the
 * header) to the first UNIT boundary after the header; its middle, whole
 * UNITs, which the thread copies into an aligned window of its own and
 * writes directly, a window at a time; and its tail, after the last UNIT
 * boundary.  A head and the tail before it share a page, written by two
 * threads: both are kept in memory (the edges, 8 KiB a block) and written
 * through the page cache once every block is done, the header last of
 * all, as it is only known when the block is.  Where the file system
 * refuses a direct write, it and all later ones go through the page cache
 * (ckpt_pwrite_direct).  The descriptor is left without O_DIRECT.
 *
 * The first failure in stream order is the one reported.  Buffers that
 * held plaintext are wiped before they are freed.
 *
 * A ckpt_encw belongs to one thread while it is described; during
 * ckpt_encw_run the workers only read it, except for the progress count,
 * which block_done updates under the pool's lock.  The block header's
 * layout is block.c's: nothing here writes header bytes itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"

#define UNIT 4096u	  /* direct writes: offsets and lengths */
#define WINDOW (8u << 20) /* a thread's direct buffer, at most */
/* per block: the head (header + up to a UNIT), then the tail */
#define HEAD_MAX (CKPT_ENC_HEADER_MAX + UNIT)
#define EDGES (HEAD_MAX + UNIT)

/* Where the bytes of a segment come from; the segment itself is the
 * extent (stream offset, source offset, length) of the same index. */
struct seg {
	enum {
		SEG_MEM,
		SEG_FD,
		SEG_FILL
	} kind;
	int fd;		 /* FD */
	const void *ctx; /* FILL */
};

struct ckpt_encw {
	const struct ckpt_key *key;
	ckpt_encw_fill_fn fill;
	struct ckpt_extent *ext; /* src: MEM offset in the arena; FD, FILL
				  * offset in the source */
	struct seg *segs;
	size_t nsegs, cap;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	uint64_t total;

	/* while running */
	int fd;
	uint64_t file_off;
	const char *path;
	uint8_t *edges; /* EDGES bytes per block: its head, then its tail */
	size_t win;	/* bytes of each thread's window (a multiple of UNIT) */
	uint64_t done;	/* plaintext bytes of finished blocks */
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

/* Makes room for one more segment. */
static ckpt_err grow(struct ckpt_encw *w, struct ckpt_error *err)
{
	size_t cap = w->cap ? 2 * w->cap : 64;
	struct ckpt_extent *x;
	struct seg *n;

	x = realloc(w->ext, cap * sizeof(*x));
	if (x)
		w->ext = x;
	n = x ? realloc(w->segs, cap * sizeof(*n)) : NULL;
	if (!n)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	w->segs = n;
	w->cap = cap;
	return CKPT_OK;
}

/* Appends len bytes of s at src, merged with the last segment when they
 * continue it. */
static ckpt_err add(struct ckpt_encw *w, struct seg s, uint64_t src,
		    uint64_t len, struct ckpt_error *err)
{
	const struct seg *l = w->nsegs ? &w->segs[w->nsegs - 1] : NULL;
	struct ckpt_extent *lx = w->nsegs ? &w->ext[w->nsegs - 1] : NULL;
	uint64_t start = w->total;

	if (!len)
		return CKPT_OK;
	w->total += len;
	if (l && l->kind == s.kind && l->fd == s.fd && l->ctx == s.ctx &&
	    lx->src + lx->len == src) {
		lx->len += len;
		return CKPT_OK;
	}
	if (w->nsegs == w->cap && grow(w, err))
		return CKPT_ERR_NOMEM;
	w->ext[w->nsegs] =
		(struct ckpt_extent){.pos = start, .src = src, .len = len};
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
	return add(w, (struct seg){.kind = SEG_MEM, .fd = -1}, w->arena_len - n,
		   n, err);
}

ckpt_err ckpt_encw_fd(struct ckpt_encw *w, int fd, uint64_t pos, uint64_t len,
		      struct ckpt_error *err)
{
	return add(w, (struct seg){.kind = SEG_FD, .fd = fd}, pos, len, err);
}

ckpt_err ckpt_encw_fill(struct ckpt_encw *w, const void *ctx, uint64_t off,
			uint64_t len, struct ckpt_error *err)
{
	return add(w, (struct seg){.kind = SEG_FILL, .fd = -1, .ctx = ctx}, off,
		   len, err);
}

uint64_t ckpt_encw_total(const struct ckpt_encw *w)
{
	return w->total;
}

/* Copies stream bytes [p, p+n) into buf. */
static ckpt_err gather(const struct ckpt_encw *w, uint64_t p, size_t n,
		       uint8_t *buf, struct ckpt_error *err)
{
	for (size_t i = ckpt_extent_at(w->ext, w->nsegs, p); n; i++) {
		const struct seg *s = &w->segs[i];
		const struct ckpt_extent *x = &w->ext[i];
		uint64_t in = p - x->pos, from = x->src + in;
		size_t k = x->len - in < n ? (size_t)(x->len - in) : n;
		ssize_t r;
		ckpt_err e;

		switch (s->kind) {
		case SEG_MEM:
			memcpy(buf, w->arena + from, k);
			break;
		case SEG_FD:
			r = ckpt_pread_full(s->fd, buf, k, from);
			if (r != (ssize_t)k) {
				if (r >= 0)
					errno = EIO;
				return ckpt_fail(err, CKPT_ERR_IO, p,
						 "writing the new checkpoint "
						 "%s failed (read of the "
						 "source): %s; the original is "
						 "untouched and all edits are "
						 "kept",
						 w->path, strerror(errno));
			}
			break;
		case SEG_FILL:
			e = w->fill(s->ctx, from, k, buf, err);
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
			 "edits are kept",
			 w->path, (unsigned long long)off, strerror(errno));
}

/* Plaintext bytes of block k. */
static size_t block_plain(const struct ckpt_encw *w, uint64_t k)
{
	uint64_t left = w->total - k * CKPT_ENC_BLOCK;

	return left < CKPT_ENC_BLOCK ? (size_t)left : CKPT_ENC_BLOCK;
}

static ckpt_err refused(uint64_t boff, struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_IO, boff,
			 "encryption failed "
			 "(OpenSSL)");
}

/* Where a block lies in the file: [s, e); its head [s, h) and its tail
 * [t, e) are kept in its edges, its middle [h, t) is whole UNITs (or
 * empty, h == t, when the block ends before the first boundary after its
 * header). */
struct span {
	uint64_t s, h, t, e;
};

static struct span block_span(const struct ckpt_encw *w, uint64_t k)
{
	const struct ckpt_key *key = w->key;
	struct span sp;
	uint64_t hend;

	sp.s = w->file_off + k * ckpt_enc_block_len(key, CKPT_ENC_BLOCK);
	sp.e = sp.s + ckpt_enc_block_len(key, block_plain(w, k));
	hend = (sp.s + ckpt_enc_header_len(key) + UNIT - 1) / UNIT * UNIT;
	sp.h = hend < sp.e ? hend : sp.e;
	sp.t = sp.e / UNIT * UNIT > sp.h ? sp.e / UNIT * UNIT : sp.h;
	return sp;
}

/* The ciphertext of one block on its way out: a thread's. */
struct out {
	const struct ckpt_encw *w;
	struct span sp;
	uint8_t *head, *tail; /* the block's edges */
	uint8_t *win;	      /* w->win bytes, aligned to UNIT */
	uint64_t pos;	      /* file offset of the next byte */
	uint64_t wpos;	      /* file offset of win[0] */
};

/* Writes the window, up to file offset end, directly. */
static ckpt_err flush(struct out *o, uint64_t end, struct ckpt_error *err)
{
	size_t n = (size_t)(end - o->wpos);

	if (ckpt_pwrite_direct(o->w->fd, o->win, n, o->wpos) < 0)
		return write_fail(o->w, o->wpos, err);
	/* a no-op after a direct write; after a refusal, start the disk on
	 * it now: the commit's fsync waits for it (and reports its errors) */
	(void)sync_file_range(o->w->fd, (off64_t)o->wpos, (off64_t)n,
			      SYNC_FILE_RANGE_WRITE);
	o->wpos = end;
	return CKPT_OK;
}

/* Where the byte at o->pos goes; *end is the file offset up to which
 * the next bytes go there too. */
static uint8_t *dest(const struct out *o, uint64_t *end)
{
	const struct span *sp = &o->sp;

	if (o->pos < sp->h) {
		*end = sp->h;
		return o->head + (o->pos - sp->s);
	}
	if (o->pos >= sp->t) {
		*end = sp->e;
		return o->tail + (o->pos - sp->t);
	}
	*end = o->wpos + o->w->win < sp->t ? o->wpos + o->w->win : sp->t;
	return o->win + (o->pos - o->wpos);
}

/* Appends n bytes of ciphertext at p to the block; a full window is
 * written. */
static ckpt_err put(struct out *o, const uint8_t *p, size_t n,
		    struct ckpt_error *err)
{
	const struct span *sp = &o->sp;

	if (n > sp->e - o->pos)
		return ckpt_fail(err, CKPT_ERR_IO, sp->s,
				 "internal error: a block encrypted to more "
				 "than %llu bytes",
				 (unsigned long long)(sp->e - sp->s));
	while (n) {
		bool middle = o->pos >= sp->h && o->pos < sp->t;
		uint64_t end;
		uint8_t *dst = dest(o, &end);
		size_t k = end - o->pos < n ? (size_t)(end - o->pos) : n;
		memcpy(dst, p, k);
		o->pos += k;
		p += k;
		n -= k;
		if (middle && o->pos == end) {
			ckpt_err e = flush(o, end, err);
			if (e)
				return e;
		}
	}
	return CKPT_OK;
}

/* Encrypts the plen bytes of the block, which start at stream offset p0,
 * chunk by chunk with ctx (set up) into o after the header; *clen is the
 * ciphertext written, tag the GCM tag. */
static ckpt_err encrypt_block(const struct ckpt_encw *w, EVP_CIPHER_CTX *ctx,
			      uint8_t *chunk, uint64_t p0, size_t plen,
			      struct out *o, uint64_t *clen, uint8_t *tag,
			      struct ckpt_error *err)
{
	bool gcm = w->key->mode == CKPT_ENC_AES_GCM;
	uint8_t fin[32];
	int n = 0;
	ckpt_err e;

	*clen = 0;
	for (size_t done = 0; done < plen;) {
		size_t c = plen - done < CKPT_CRYPT_CHUNK ? plen - done
							  : CKPT_CRYPT_CHUNK;
		e = gather(w, p0 + done, c, chunk, err);
		if (e)
			return e;
		if (!EVP_EncryptUpdate(ctx, chunk, &n, chunk, (int)c))
			return refused(o->sp.s, err);
		e = put(o, chunk, (size_t)n, err);
		if (e)
			return e;
		*clen += (uint64_t)n;
		done += c;
	}
	if (!EVP_EncryptFinal_ex(ctx, fin, &n) ||
	    (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag)))
		return refused(o->sp.s, err);
	*clen += (uint64_t)n;
	return put(o, fin, (size_t)n, err);
}

/* ckpt_crypt_job: encrypts block k, writes its middle and keeps its
 * edges, the header in front of its head. */
static ckpt_err do_block(void *arg, uint64_t k, struct ckpt_crypt_scratch *s,
			 struct ckpt_error *err)
{
	const struct ckpt_encw *w = arg;
	const struct ckpt_key *key = w->key;
	size_t plen = block_plain(w, k), hdr = ckpt_enc_header_len(key);
	uint8_t *edges = w->edges + k * EDGES;
	struct out o = {.w = w,
			.sp = block_span(w, k),
			.head = edges,
			.tail = edges + HEAD_MAX,
			.win = s->chunk};
	uint64_t clen;
	uint8_t iv[16], tag[16] = {0};
	ckpt_err e;

	o.pos = o.sp.s + hdr;
	o.wpos = o.sp.h;
	if (RAND_bytes(iv, sizeof(iv)) != 1 ||
	    !ckpt_enc_ctx_init(s->ctx, key, iv, false, true))
		return refused(o.sp.s, err);
	e = encrypt_block(w, s->ctx, s->chunk + w->win, k * CKPT_ENC_BLOCK,
			  plen, &o, &clen, tag, err);
	if (!e && o.wpos < o.sp.t)
		e = flush(&o, o.sp.t, err);
	if (e)
		return e;
	if (hdr + clen != ckpt_enc_block_len(key, plen))
		return ckpt_fail(err, CKPT_ERR_IO, o.sp.s,
				 "internal error: a "
				 "block of %zu bytes encrypted to %llu",
				 plen, (unsigned long long)clen);
	ckpt_enc_put_header(key, iv, tag, (uint32_t)clen, o.head);
	return CKPT_OK;
}

/* After block k (under the pool's lock): progress. */
static void block_done(void *arg, uint64_t k)
{
	struct ckpt_encw *w = arg;

	w->done += block_plain(w, k);
	if (w->progress)
		w->progress(w->progress_ctx, w->done, w->total);
}

/* Once every block's middle is written: their edges, through the page
 * cache, headers and all. */
static ckpt_err write_edges(const struct ckpt_encw *w, uint64_t n,
			    struct ckpt_error *err)
{
	if (ckpt_set_direct(w->fd, false) < 0)
		return write_fail(w, w->file_off, err);
	for (uint64_t k = 0; k < n; k++) {
		struct span sp = block_span(w, k);
		const uint8_t *edges = w->edges + k * EDGES;
		if (ckpt_pwrite_full(w->fd, edges, sp.h - sp.s, sp.s) < 0)
			return write_fail(w, sp.s, err);
		if (ckpt_pwrite_full(w->fd, edges + HEAD_MAX, sp.e - sp.t,
				     sp.t) < 0)
			return write_fail(w, sp.t, err);
	}
	return CKPT_OK;
}

ckpt_err
ckpt_encw_run(struct ckpt_encw *w, int fd, uint64_t off, const char *path,
	      void (*progress)(void *ctx, uint64_t done, uint64_t total),
	      void *progress_ctx, uint64_t *end, uint64_t *blocks,
	      struct ckpt_error *err)
{
	uint64_t n = (w->total + CKPT_ENC_BLOCK - 1) / CKPT_ENC_BLOCK;
	size_t gather_len = w->total < CKPT_CRYPT_CHUNK ? (size_t)w->total
							: CKPT_CRYPT_CHUNK;
	ckpt_err r;

	w->fd = fd;
	w->file_off = off;
	w->path = path;
	w->done = 0;
	w->progress = progress;
	w->progress_ctx = progress_ctx;
	/* no block's middle is longer than its plaintext rounded up */
	w->win = w->total < WINDOW ? (size_t)(w->total + UNIT - 1) / UNIT * UNIT
				   : WINDOW;
	*blocks = n;
	*end = n ? block_span(w, n - 1).e : off;
	w->edges = n ? malloc(n * EDGES) : NULL;
	if (n && !w->edges)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	(void)ckpt_set_direct(fd, true); /* else through the page cache */
	r = ckpt_crypt_parallel(n, ckpt_crypto_threads(), w->win + gather_len,
				do_block, block_done, w, err);
	if (!r)
		r = write_edges(w, n, err);
	else
		(void)ckpt_set_direct(fd, false);
	free(w->edges);
	w->edges = NULL;
	return r;
}

void ckpt_encw_free(struct ckpt_encw *w)
{
	if (!w)
		return;
	if (w->arena)
		OPENSSL_cleanse(w->arena, w->arena_len);
	free(w->arena);
	free(w->ext);
	free(w->segs);
	free(w);
}
