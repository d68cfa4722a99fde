/*
 * crypt.h - MindSpore's block encryption (format document, section 6), for
 * format/open.c (reading) and commit/sink_enc.c (writing).
 *
 * key.c holds the keys, the mode names and the OpenSSL cipher setup;
 * block.c parses and builds the header of one block (its layout is in
 * block.c's head comment); decrypt.c turns a whole encrypted file into a
 * plaintext memfd and encwriter.c a plaintext stream into encrypted
 * blocks, both spreading the blocks over the threads of cryptpool.c.
 */
#ifndef CKPT_CRYPT_H
#define CKPT_CRYPT_H

#include <openssl/evp.h>

#include "base/base.h"

/* A key as MindSpore's enc_key: raw bytes, no KDF.  ckpt_key_read puts it
 * alone in a locked page that is wiped by ckpt_key_free (a key on the
 * stack, as the fuzzer's, must never be given to ckpt_key_free). */
struct ckpt_key {
	enum ckpt_enc_mode mode;
	size_t len;
	uint8_t bytes[64];
};

/* Most plaintext in one block (MindSpore >= 1.7), and in a legacy one. */
#define CKPT_ENC_BLOCK (64u << 20)
#define CKPT_ENC_LEGACY_MAX ((512u << 20) + 16u)

/* ---- key.c: keys and ciphers ------------------------------------------- */

/* The OpenSSL cipher for key (mode and key length); NULL for a key of mode
 * CKPT_ENC_NONE. */
const EVP_CIPHER *ckpt_enc_cipher(const struct ckpt_key *key);

/* Sets ctx (new or used) up to encrypt (enc true) or decrypt one block
 * with key and the 16-byte iv: GCM with a 16-byte IV, or the 12-byte IV
 * of MindSpore 1.3-1.6 when legacy; CBC with PKCS#7 padding when
 * encrypting, without (the caller strips it) when decrypting.  False if
 * OpenSSL refuses. */
bool ckpt_enc_ctx_init(EVP_CIPHER_CTX *ctx, const struct ckpt_key *key,
		       const uint8_t *iv, bool legacy, bool enc);

/* ---- block.c: one block ------------------------------------------------ */

/* One block as found in a file. */
struct ckpt_enc_block {
	uint64_t off; /* of the magic */
	bool legacy;  /* MindSpore 1.3-1.6 layout */
	uint8_t tag[16];
	uint8_t iv[16];
	uint64_t cipher_off;
	uint32_t cipher_len;
	uint64_t plain_off; /* where its plaintext goes in the stream */
	uint32_t plain_len; /* set by ckpt_enc_plain_len */
};

/* Largest block header (GCM). */
#define CKPT_ENC_HEADER_MAX 48

/* Reads and checks the header of the block at off of a file of size
 * bytes: magic, mode against key->mode, lengths against the file. */
ckpt_err ckpt_enc_read_header(int fd, const char *label, uint64_t off,
			      uint64_t size, const struct ckpt_key *key,
			      struct ckpt_enc_block *b, struct ckpt_error *err);

/* Sets b->plain_len: the cipher length for GCM; for CBC modes the PKCS#7
 * padding is read off the last cipher block (so a wrong key usually fails
 * here already). */
ckpt_err ckpt_enc_plain_len(int fd, const char *label,
			    const struct ckpt_key *key,
			    struct ckpt_enc_block *b, struct ckpt_error *err);

/* Writes into h the header of a block of key's mode (current layout)
 * holding cipher_len bytes of ciphertext encrypted with iv; tag is the GCM
 * tag (unused for CBC).  Returns the header's length,
 * ckpt_enc_header_len(key). */
size_t ckpt_enc_put_header(const struct ckpt_key *key, const uint8_t *iv,
			   const uint8_t *tag, uint32_t cipher_len,
			   uint8_t h[CKPT_ENC_HEADER_MAX]);

/* Bytes of a block header: 48 for GCM, 32 for the CBC modes. */
size_t ckpt_enc_header_len(const struct ckpt_key *key);

/* Bytes a block holding len bytes of plaintext takes in the file. */
uint64_t ckpt_enc_block_len(const struct ckpt_key *key, size_t len);

/* ---- cryptpool.c: blocks on worker threads ----------------------------- */

/* Worker threads for block cryptography: $CKPT_CRYPTO_THREADS if set
 * (1-64), else the online CPUs, at most 8. */
unsigned ckpt_crypto_threads(void);

/* Bytes a worker handles at a time: small enough to stay in the cache. */
#define CKPT_CRYPT_CHUNK (256u << 10)

/* The alignment of a worker's chunk: enough for O_DIRECT writes from it. */
#define CKPT_CRYPT_ALIGN 4096u

/* What each worker thread owns; the chunk is wiped when the thread ends. */
struct ckpt_crypt_scratch {
	EVP_CIPHER_CTX *ctx;
	uint8_t *chunk; /* chunk_size bytes of ckpt_crypt_parallel, aligned
			 * to CKPT_CRYPT_ALIGN */
};

typedef ckpt_err (*ckpt_crypt_job)(void *arg, uint64_t i,
				   struct ckpt_crypt_scratch *s,
				   struct ckpt_error *err);

/* Runs job(arg, i, ...) for every i < n on up to nthreads threads (this
 * one included), taking i in increasing order; after a failure no higher
 * i is started.  Each thread's chunk has chunk_size bytes, rounded up to
 * a multiple of CKPT_CRYPT_ALIGN.  after (may be NULL) is called after
 * each i, under a lock.  Returns the error of the lowest failed i, as a
 * single thread going in order would. */
ckpt_err ckpt_crypt_parallel(uint64_t n, unsigned nthreads, size_t chunk_size,
			     ckpt_crypt_job job,
			     void (*after)(void *arg, uint64_t i), void *arg,
			     struct ckpt_error *err);

/* ---- decrypt.c: an encrypted file to a plaintext memfd ----------------- */

/* Decrypts the blocks of fd (st->file_size bytes) into a new memfd,
 * returned in *out; fills the enc_* fields of st.  On failure nothing of
 * the plaintext survives and the error names the first bad block. */
ckpt_err ckpt_decrypt_to_memfd(int fd, const char *label,
			       const struct ckpt_key *key, int *out,
			       struct ckpt_stats *st, struct ckpt_error *err);

/* ---- encwriter.c: a plaintext stream to encrypted blocks ---------------- */

/* Copies len bytes at offset off of the source ctx into buf. */
typedef ckpt_err (*ckpt_encw_fill_fn)(const void *ctx, uint64_t off, size_t len,
				      uint8_t *buf, struct ckpt_error *err);

struct ckpt_encw;

/* Starts describing a plaintext stream to be encrypted with key; fill
 * reads the ranges added with ckpt_encw_fill. */
ckpt_err ckpt_encw_new(const struct ckpt_key *key, ckpt_encw_fill_fn fill,
		       struct ckpt_encw **out, struct ckpt_error *err);

/* Appends n bytes, copied now. */
ckpt_err ckpt_encw_bytes(struct ckpt_encw *w, const void *buf, size_t n,
			 struct ckpt_error *err);

/* Appends len bytes of fd at pos, read when the block is written. */
ckpt_err ckpt_encw_fd(struct ckpt_encw *w, int fd, uint64_t pos, uint64_t len,
		      struct ckpt_error *err);

/* Appends len bytes that fill(ctx, off + ...) provides when needed. */
ckpt_err ckpt_encw_fill(struct ckpt_encw *w, const void *ctx, uint64_t off,
			uint64_t len, struct ckpt_error *err);

/* Bytes of plaintext described so far. */
uint64_t ckpt_encw_total(const struct ckpt_encw *w);

/* Encrypts the stream into blocks written to fd from offset off, on
 * ckpt_crypto_threads() threads; the sources must not change meanwhile.
 * Writes with O_DIRECT where fd's file system allows it (else through the
 * page cache; see the top of encwriter.c) and leaves fd without it.
 * progress (may be NULL) is called after each block, from whichever
 * thread finished it, one call at a time.  *end is the offset
 * after the last block, *blocks how many there are.  On failure the error
 * of the first bad block is returned and fd holds garbage.  Nothing is
 * synced. */
ckpt_err
ckpt_encw_run(struct ckpt_encw *w, int fd, uint64_t off, const char *path,
	      void (*progress)(void *ctx, uint64_t done, uint64_t total),
	      void *progress_ctx, uint64_t *end, uint64_t *blocks,
	      struct ckpt_error *err);

/* Wipes and frees the description.  NULL is a no-op. */
void ckpt_encw_free(struct ckpt_encw *w);

#endif /* CKPT_CRYPT_H */
