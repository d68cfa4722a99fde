/*
 * decrypt.c - an encrypted checkpoint to a plaintext memfd, on all cores.
 *
 * The block headers are read first, a batch at a time; they give every
 * block's place in the plaintext (for the CBC modes the padding is read off
 * the last cipher block).  The blocks of the batch are then decrypted by
 * ckpt_crypto_threads() threads, each reading its block in chunks into a
 * small buffer, decrypting the chunk in place while it is in the CPU's
 * cache, and writing it to its place in the memfd.  (Decrypting straight
 * into a mapping of the memfd was tried and is slower: on the virtual
 * machines measured, the first touch of each 4 KiB page from user space
 * costs more than copying the page in the kernel; docs/performance.md.)
 *
 * A GCM tag is checked at the end of its block.  The error reported is the
 * one of the first bad block in file order, as a sequential decryption
 * would report it, and on any error the memfd is closed: no plaintext of a
 * failed open survives.  The memfd never reaches a disk (no swap aside).
 * The workers share only the read-only batch; each writes its own range
 * of the memfd.  Headers are parsed by block.c, never here.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt/crypt.h"

enum {
	BATCH = 1024,		 /* block headers held at a time */
	MIN_PER_THREAD = 4 << 20 /* a thread is not worth less than this */
};

struct batch {
	int fd;
	const char *label;
	const struct ckpt_key *key;
	const struct ckpt_enc_block *blocks;
	int mfd; /* the plaintext goes here */
};

static ckpt_err refused(const struct batch *bt, const struct ckpt_enc_block *b,
			struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_IO, b->off,
			 "%s: OpenSSL refused to decrypt", bt->label);
}

static ckpt_err no_room(const struct batch *bt, const struct ckpt_enc_block *b,
			struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_NOMEM, b->off,
			 "%s: cannot hold the decrypted data in memory: %s",
			 bt->label, strerror(errno));
}

/* Decrypts the ciphertext of b chunk by chunk in place in chunk and
 * writes the plaintext of its first body bytes to the memfd; for CBC the
 * padded last cipher block goes into last[]. */
static ckpt_err decrypt_chunks(const struct batch *bt,
			       const struct ckpt_enc_block *b,
			       EVP_CIPHER_CTX *ctx, uint8_t *chunk,
			       uint32_t body, uint8_t *last,
			       struct ckpt_error *err)
{
	int n = 0;

	for (uint32_t done = 0; done < b->cipher_len;) {
		uint32_t k = b->cipher_len - done < CKPT_CRYPT_CHUNK
				     ? b->cipher_len - done
				     : CKPT_CRYPT_CHUNK;
		uint32_t direct = done + k <= body ? k : body - done;
		ssize_t r =
			ckpt_pread_full(bt->fd, chunk, k, b->cipher_off + done);
		if (r != (ssize_t)k)
			return ckpt_fail(
				err, CKPT_ERR_IO, b->cipher_off + done,
				"%s: read at offset %llu failed: %s", bt->label,
				(unsigned long long)(b->cipher_off + done),
				r < 0 ? strerror(errno) : "short read");
		if ((direct &&
		     (!EVP_DecryptUpdate(ctx, chunk, &n, chunk, (int)direct) ||
		      n != (int)direct)) ||
		    (direct < k &&
		     (!EVP_DecryptUpdate(ctx, last, &n, chunk + direct, 16) ||
		      n != 16)))
			return refused(bt, b, err);
		if (direct && ckpt_pwrite_full(bt->mfd, chunk, direct,
					       b->plain_off + done) < 0)
			return no_room(bt, b, err);
		done += k;
	}
	return CKPT_OK;
}

/* After the chunks of b: checks a GCM tag, or writes the plaintext of
 * the CBC block in last[] up to its padding. */
static ckpt_err finish_block(const struct batch *bt,
			     const struct ckpt_enc_block *b,
			     EVP_CIPHER_CTX *ctx, uint32_t body, uint8_t *last,
			     struct ckpt_error *err)
{
	unsigned pad;
	int n = 0;

	if (bt->key->mode == CKPT_ENC_AES_GCM) {
		if (b->legacy) /* never authenticated by MindSpore 1.3-1.6 */
			return CKPT_OK;
		if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
					 CKPT_UNCONST(b->tag)))
			return refused(bt, b, err);
		if (EVP_DecryptFinal_ex(ctx, last, &n))
			return CKPT_OK;
		return ckpt_fail(err, CKPT_ERR_INVAL, b->off,
				 "%s: offset %llu: authentication failed: "
				 "wrong key, or the file was changed or "
				 "damaged",
				 bt->label, (unsigned long long)b->off);
	}
	pad = last[15];
	if (pad != b->cipher_len - b->plain_len)
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: offset %llu: the block changed while it "
				 "was read",
				 bt->label, (unsigned long long)b->off);
	if (ckpt_pwrite_full(bt->mfd, last, 16 - pad, b->plain_off + body) < 0)
		return no_room(bt, b, err);
	return CKPT_OK;
}

/* ckpt_crypt_job: decrypts block i chunk by chunk in the scratch buffer
 * and writes each chunk's plaintext to its place in the memfd. */
static ckpt_err decrypt_one(void *arg, uint64_t i, struct ckpt_crypt_scratch *s,
			    struct ckpt_error *err)
{
	const struct batch *bt = arg;
	const struct ckpt_enc_block *b = &bt->blocks[i];
	bool gcm = bt->key->mode == CKPT_ENC_AES_GCM;
	uint32_t body = gcm ? b->cipher_len : b->cipher_len - 16;
	uint8_t last[16];
	ckpt_err e;

	if (!ckpt_enc_ctx_init(s->ctx, bt->key, b->iv, b->legacy, false))
		e = refused(bt, b, err);
	else
		e = decrypt_chunks(bt, b, s->ctx, s->chunk, body, last, err);
	if (!e)
		e = finish_block(bt, b, s->ctx, body, last, err);
	OPENSSL_cleanse(last, sizeof(last));
	return e;
}

/* Reads the headers from *off on, up to BATCH or the first bad one (its
 * error in *he and herr), into blocks: their place in the plaintext from
 * *total on.  Returns how many; *bytes and *biggest are their ciphertext
 * bytes and the longest. */
static uint64_t read_batch(const struct batch *bt, uint64_t *off, uint64_t size,
			   uint64_t *total, struct ckpt_enc_block *blocks,
			   uint64_t *bytes, uint64_t *biggest,
			   struct ckpt_stats *st, ckpt_err *he,
			   struct ckpt_error *herr)
{
	uint64_t n = 0;

	*bytes = *biggest = 0;
	while (*off < size && n < BATCH) {
		struct ckpt_enc_block *b = &blocks[n];
		*he = ckpt_enc_read_header(bt->fd, bt->label, *off, size,
					   bt->key, b, herr);
		if (!*he)
			*he = ckpt_enc_plain_len(bt->fd, bt->label, bt->key, b,
						 herr);
		if (*he)
			break;
		b->plain_off = *total;
		*total += b->plain_len;
		*bytes += b->cipher_len;
		if (b->cipher_len > *biggest)
			*biggest = b->cipher_len;
		*off = b->cipher_off + b->cipher_len;
		st->enc_legacy |= b->legacy;
		n++;
	}
	return n;
}

ckpt_err ckpt_decrypt_to_memfd(int fd, const char *label,
			       const struct ckpt_key *key, int *out,
			       struct ckpt_stats *st, struct ckpt_error *err)
{
	struct ckpt_enc_block *blocks = malloc(BATCH * sizeof(*blocks));
	uint64_t off = 0, size = st->file_size, total = 0;
	unsigned nthreads = ckpt_crypto_threads();
	int mfd = memfd_create("ckptfs-plain", MFD_CLOEXEC);
	struct batch bt = {.fd = fd,
			   .mfd = mfd,
			   .label = label,
			   .key = key,
			   .blocks = blocks};
	struct ckpt_error herr;
	ckpt_err e = CKPT_OK, he = CKPT_OK;

	*out = -1;
	if (!blocks || mfd < 0) {
		e = ckpt_fail(err, mfd < 0 ? CKPT_ERR_IO : CKPT_ERR_NOMEM, 0,
			      "%s: cannot set up decryption: %s", label,
			      strerror(errno));
		goto out;
	}
	while (off < size && !he) {
		uint64_t bytes, biggest, n;
		unsigned threads;

		n = read_batch(&bt, &off, size, &total, blocks, &bytes,
			       &biggest, st, &he, &herr);
		threads = bytes / MIN_PER_THREAD < nthreads
				  ? (unsigned)(bytes / MIN_PER_THREAD)
				  : nthreads;
		e = ckpt_crypt_parallel(n, threads,
					biggest < CKPT_CRYPT_CHUNK
						? (size_t)biggest
						: CKPT_CRYPT_CHUNK,
					decrypt_one, NULL, &bt, err);
		if (e)
			goto out;
		st->enc_blocks += n;
	}
	if (he) {
		e = he;
		if (err)
			*err = herr;
		goto out;
	}
	st->enc_mode = key->mode;
	*out = mfd;
	mfd = -1;
out:
	free(blocks);
	if (mfd >= 0)
		close(mfd);
	return e;
}
