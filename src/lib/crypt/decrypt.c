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
	BATCH = 1024,           /* block headers held at a time */
	MIN_PER_THREAD = 4 << 20 /* a thread is not worth less than this */
};

struct batch {
	int fd;
	const char *label;
	const struct ckpt_key *key;
	const struct ckpt_enc_block *blocks;
	int mfd; /* the plaintext goes here */
};

/* ckpt_crypt_job: decrypts block i chunk by chunk in the scratch buffer
 * and writes each chunk's plaintext to its place in the memfd. */
static ckpt_err decrypt_one(void *arg, uint64_t i,
			    struct ckpt_crypt_scratch *s,
			    struct ckpt_error *err)
{
	const struct batch *bt = arg;
	const struct ckpt_enc_block *b = &bt->blocks[i];
	EVP_CIPHER_CTX *ctx = s->ctx;
	uint8_t *chunk = s->chunk;
	const struct ckpt_key *key = bt->key;
	bool gcm = key->mode == CKPT_ENC_AES_GCM;
	uint32_t body = gcm ? b->cipher_len : b->cipher_len - 16;
	uint8_t last[16];
	unsigned pad;
	int n = 0;

	if (!ckpt_enc_ctx_init(ctx, key, b->iv, b->legacy, false))
		goto refused;
	for (uint32_t done = 0; done < b->cipher_len;) {
		uint32_t k = b->cipher_len - done < CKPT_CRYPT_CHUNK
				     ? b->cipher_len - done
				     : CKPT_CRYPT_CHUNK;
		uint32_t direct = done + k <= body ? k : body - done;
		ssize_t r = ckpt_pread_full(bt->fd, chunk, k,
					    b->cipher_off + done);
		if (r != (ssize_t)k)
			return ckpt_fail(err, CKPT_ERR_IO, b->cipher_off + done,
					 "%s: read at offset %llu failed: %s",
					 bt->label,
					 (unsigned long long)(b->cipher_off +
							      done),
					 r < 0 ? strerror(errno)
					       : "short read");
		/* in place; CBC: the padded last block into last[] */
		if ((direct && (!EVP_DecryptUpdate(ctx, chunk, &n, chunk,
						   (int)direct) ||
				n != (int)direct)) ||
		    (direct < k && (!EVP_DecryptUpdate(ctx, last, &n,
						       chunk + direct, 16) ||
				    n != 16)))
			goto refused;
		if (direct && ckpt_pwrite_full(bt->mfd, chunk, direct,
					       b->plain_off + done) < 0)
			goto nomem;
		done += k;
	}
	if (gcm && b->legacy) /* never authenticated by MindSpore 1.3-1.6 */
		return CKPT_OK;
	if (gcm) {
		if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
					 (void *)b->tag))
			goto refused;
		if (EVP_DecryptFinal_ex(ctx, last, &n))
			return CKPT_OK;
		return ckpt_fail(err, CKPT_ERR_INVAL, b->off,
				 "%s: offset %llu: authentication failed: "
				 "wrong key, or the file was changed or "
				 "damaged", bt->label,
				 (unsigned long long)b->off);
	}
	pad = last[15];
	if (pad != b->cipher_len - b->plain_len) {
		OPENSSL_cleanse(last, sizeof(last));
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: offset %llu: the block changed while it "
				 "was read", bt->label,
				 (unsigned long long)b->off);
	}
	n = ckpt_pwrite_full(bt->mfd, last, 16 - pad, b->plain_off + body);
	OPENSSL_cleanse(last, sizeof(last));
	if (n < 0)
		goto nomem;
	return CKPT_OK;
refused:
	OPENSSL_cleanse(last, sizeof(last));
	return ckpt_fail(err, CKPT_ERR_IO, b->off,
			 "%s: OpenSSL refused to decrypt", bt->label);
nomem:
	OPENSSL_cleanse(last, sizeof(last));
	return ckpt_fail(err, CKPT_ERR_NOMEM, b->off,
			 "%s: cannot hold the decrypted data in memory: %s",
			 bt->label, strerror(errno));
}

ckpt_err ckpt_decrypt_to_memfd(int fd, const char *label,
			       const struct ckpt_key *key, int *out,
			       struct ckpt_stats *st, struct ckpt_error *err)
{
	struct ckpt_enc_block *blocks = malloc(BATCH * sizeof(*blocks));
	uint64_t off = 0, size = st->file_size, total = 0;
	unsigned nthreads = ckpt_crypto_threads();
	int mfd = memfd_create("ckptfs-plain", MFD_CLOEXEC);
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
		struct batch bt = {.fd = fd, .mfd = mfd, .label = label,
				   .key = key, .blocks = blocks};
		uint64_t bytes = 0, n = 0, biggest = 0;
		unsigned threads;

		/* headers up to the batch size or the first bad one */
		while (off < size && n < BATCH) {
			struct ckpt_enc_block *b = &blocks[n];
			he = ckpt_enc_read_header(fd, label, off, size, key, b,
						  &herr);
			if (!he)
				he = ckpt_enc_plain_len(fd, label, key, b,
							&herr);
			if (he)
				break;
			b->plain_off = total;
			total += b->plain_len;
			bytes += b->cipher_len;
			if (b->cipher_len > biggest)
				biggest = b->cipher_len;
			off = b->cipher_off + b->cipher_len;
			st->enc_legacy |= b->legacy;
			n++;
		}
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
