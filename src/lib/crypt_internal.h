/*
 * crypt_internal.h - block encryption shared by open.c and commit.c.
 */
#ifndef CKPT_CRYPT_INTERNAL_H
#define CKPT_CRYPT_INTERNAL_H

#include "internal.h"

/* Most plaintext in one block (MindSpore >= 1.7), and in a legacy one. */
#define CKPT_ENC_BLOCK (64u << 20)
#define CKPT_ENC_LEGACY_MAX ((512u << 20) + 16u)
/* Bytes a block adds to its plaintext, at most (GCM header; CBC padding). */
#define CKPT_ENC_OVERHEAD 64u

/* Decrypts the blocks of fd (st->file_size bytes) into a new memfd,
 * returned in *out; fills the enc_* fields of st. */
ckpt_err ckpt_decrypt_to_memfd(int fd, const char *label,
			       const struct ckpt_key *key, int *out,
			       struct ckpt_stats *st, struct ckpt_error *err);

/* Encrypts len (<= CKPT_ENC_BLOCK) bytes into one block at out (room for
 * len + CKPT_ENC_OVERHEAD) with a fresh random IV. */
ckpt_err ckpt_encrypt_block(const struct ckpt_key *key, const uint8_t *plain,
			    size_t len, uint8_t *out, size_t *out_len,
			    struct ckpt_error *err);

#endif /* CKPT_CRYPT_INTERNAL_H */
