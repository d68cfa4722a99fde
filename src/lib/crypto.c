/*
 * crypto.c - MindSpore's encrypted checkpoint blocks (format document, §6).
 *
 * An encrypted checkpoint is the plaintext stream cut into blocks of at
 * most 64 MiB, each encrypted on its own:
 *
 *   magic(4) [GCM: tag(16)] block_size(4) iv_len(4)=16 iv(16)
 *   cipher_len(4) ciphertext            (integers little-endian)
 *
 * with block_size = 24 + cipher_len.  MindSpore 1.3-1.6 wrote a legacy
 * layout without the tag, with magic 0x7F3A5ED8 for both modes and
 * unauthenticated GCM (12-byte IV, tag never checked).
 *
 * Decryption writes the plaintext into a memfd, which the scanner then
 * indexes like a plain file: decrypted data never reaches a disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt_internal.h"

static const uint32_t magics[] = {
	[CKPT_ENC_AES_GCM] = 0x7F3A5ED8,
	[CKPT_ENC_AES_CBC] = 0x7F3A5ED9,
	[CKPT_ENC_SM4_CBC] = 0x7F3A5EDA,
};

static const char *const mode_names[] = {
	[CKPT_ENC_NONE] = "none",
	[CKPT_ENC_AES_GCM] = "AES-GCM",
	[CKPT_ENC_AES_CBC] = "AES-CBC",
	[CKPT_ENC_SM4_CBC] = "SM4-CBC",
};

bool ckpt_enc_mode_parse(const char *s, enum ckpt_enc_mode *mode)
{
	for (int m = CKPT_ENC_AES_GCM; m <= CKPT_ENC_SM4_CBC; m++) {
		if (strcasecmp(s, mode_names[m]) == 0) {
			*mode = (enum ckpt_enc_mode)m;
			return true;
		}
	}
	return false;
}

const char *ckpt_enc_mode_name(enum ckpt_enc_mode mode)
{
	return mode <= CKPT_ENC_SM4_CBC ? mode_names[mode] : "?";
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static enum ckpt_enc_mode mode_of_magic(uint32_t magic)
{
	for (int m = CKPT_ENC_AES_GCM; m <= CKPT_ENC_SM4_CBC; m++)
		if (magics[m] == magic)
			return (enum ckpt_enc_mode)m;
	return CKPT_ENC_NONE;
}

enum ckpt_enc_mode ckpt_detect_encryption(int fd)
{
	uint8_t b[4];

	if (ckpt_pread_full(fd, b, 4, 0) != 4)
		return CKPT_ENC_NONE;
	return mode_of_magic(le32(b));
}

/* ---- keys ---------------------------------------------------------------- */

ckpt_err ckpt_key_read(int fd, enum ckpt_enc_mode mode, struct ckpt_key **out,
		       struct ckpt_error *err)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0;
	struct ckpt_key *k;
	ckpt_err e = CKPT_OK;
	uint8_t extra;

	*out = NULL;
	k = mmap(NULL, page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	mlock(k, page);                 /* best effort: keep out of swap */
	madvise(k, page, MADV_DONTDUMP); /* and out of core dumps */
	k->mode = mode;
	while (n < sizeof(k->bytes)) {
		ssize_t r = read(fd, k->bytes + n, sizeof(k->bytes) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = ckpt_fail(err, CKPT_ERR_IO, 0,
				      "cannot read the key: %s",
				      strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n == sizeof(k->bytes) && read(fd, &extra, 1) == 1) {
		e = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "the key is longer than %zu bytes; a key is the "
			      "raw bytes of MindSpore's enc_key",
			      sizeof(k->bytes));
		goto out;
	}
	k->len = n;
	if (mode == CKPT_ENC_SM4_CBC ? n != 16
				     : (n != 16 && n != 24 && n != 32)) {
		e = ckpt_fail(err, CKPT_ERR_INVAL, 0,
			      "the key is %zu bytes; %s needs %s (the raw "
			      "bytes of MindSpore's enc_key, no newline)",
			      n, ckpt_enc_mode_name(mode),
			      mode == CKPT_ENC_SM4_CBC ? "16"
						       : "16, 24 or 32");
		goto out;
	}
out:
	if (e) {
		ckpt_key_free(k);
		return e;
	}
	*out = k;
	return CKPT_OK;
}

ckpt_err ckpt_key_load(const char *mode, const char *keyfile, int keyfd,
		       struct ckpt_key **out, struct ckpt_error *err)
{
	enum ckpt_enc_mode m;
	int fd = keyfd;
	ckpt_err e;

	*out = NULL;
	if (!mode && !keyfile && keyfd < 0)
		return CKPT_OK;
	if (!mode || !ckpt_enc_mode_parse(mode, &m))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "give the encryption mode (AES-GCM, AES-CBC "
				 "or SM4-CBC) together with the key");
	if (!keyfile && keyfd < 0)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "%s needs a key: a key file or a descriptor",
				 mode);
	if (keyfile)
		fd = strcmp(keyfile, "-") ? open(keyfile, O_RDONLY | O_CLOEXEC)
					  : 0;
	if (fd < 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0, "key file %s: %s",
				 keyfile, strerror(errno));
	e = ckpt_key_read(fd, m, out, err);
	if (fd > 2)
		close(fd);
	return e;
}

void ckpt_key_free(struct ckpt_key *key)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	if (!key)
		return;
	OPENSSL_cleanse(key, page);
	munlock(key, page);
	munmap(key, page);
}

static const EVP_CIPHER *cipher_of(const struct ckpt_key *k, bool legacy)
{
	(void)legacy;
	switch (k->mode) {
	case CKPT_ENC_AES_GCM:
		return k->len == 16 ? EVP_aes_128_gcm()
		       : k->len == 24 ? EVP_aes_192_gcm() : EVP_aes_256_gcm();
	case CKPT_ENC_AES_CBC:
		return k->len == 16 ? EVP_aes_128_cbc()
		       : k->len == 24 ? EVP_aes_192_cbc() : EVP_aes_256_cbc();
	case CKPT_ENC_SM4_CBC:
		return EVP_sm4_cbc();
	default:
		return NULL;
	}
}

/* ---- decryption ---------------------------------------------------------- */

struct block {
	uint64_t off;   /* of the magic */
	bool legacy;
	uint8_t tag[16];
	uint8_t iv[16];
	uint64_t cipher_off;
	uint32_t cipher_len;
};

/* Reads and checks the header of the block at off. */
static ckpt_err read_header(int fd, const char *label, uint64_t off,
			    uint64_t size, const struct ckpt_key *key,
			    struct block *b, struct ckpt_error *err)
{
	uint8_t h[48];
	size_t hlen, p = 4;
	enum ckpt_enc_mode m;
	uint32_t block_size, iv_len;
	ssize_t n;

	memset(b, 0, sizeof(*b));
	b->off = off;
	n = ckpt_pread_full(fd, h, size - off < sizeof(h) ? size - off
							   : sizeof(h), off);
	if (n < 0)
		return ckpt_fail(err, CKPT_ERR_IO, off, "%s: read at offset "
				 "%llu failed: %s", label,
				 (unsigned long long)off, strerror(errno));
	if (n < 32)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: truncated encrypted block "
				 "(%zd bytes left, a header needs 32 or 48)",
				 label, (unsigned long long)off, n);
	m = mode_of_magic(le32(h));
	if (m == CKPT_ENC_NONE)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: no encrypted block starts "
				 "here (bad magic 0x%08x): damaged file",
				 label, (unsigned long long)off, le32(h));
	/* legacy (1.3-1.6): iv_len at 8 is 16 and block_size at 4 matches */
	if (m == CKPT_ENC_AES_GCM && le32(h + 8) == 16 &&
	    le32(h + 4) == 24 + le32(h + 28)) {
		b->legacy = true;
	} else if (m != key->mode) {
		return ckpt_fail(err, CKPT_ERR_INVAL, off,
				 "%s: offset %llu: the block is %s but the "
				 "mode given is %s: use enc_mode=%s",
				 label, (unsigned long long)off,
				 ckpt_enc_mode_name(m),
				 ckpt_enc_mode_name(key->mode),
				 ckpt_enc_mode_name(m));
	}
	if (!b->legacy && m == CKPT_ENC_AES_GCM) {
		if (n < 48)
			return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
					 "%s: offset %llu: truncated encrypted "
					 "block header", label,
					 (unsigned long long)off);
		memcpy(b->tag, h + 4, 16);
		p = 20;
	}
	block_size = le32(h + p);
	iv_len = le32(h + p + 4);
	memcpy(b->iv, h + p + 8, 16);
	b->cipher_len = le32(h + p + 24);
	hlen = p + 28;
	if (iv_len != 16 || b->cipher_len == 0 ||
	    block_size != 24 + (uint64_t)b->cipher_len)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block header is "
				 "inconsistent (block_size %u, iv_len %u, "
				 "cipher_len %u): damaged file", label,
				 (unsigned long long)off, block_size, iv_len,
				 b->cipher_len);
	if (b->cipher_len > (b->legacy ? CKPT_ENC_LEGACY_MAX
			     : m == CKPT_ENC_AES_GCM ? CKPT_ENC_BLOCK
						     : CKPT_ENC_BLOCK + 16))
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block claims %u "
				 "bytes, more than a block may hold", label,
				 (unsigned long long)off, b->cipher_len);
	if (b->cipher_len > size - off - hlen)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block of %u bytes "
				 "runs past the end of the file (%llu bytes "
				 "left): truncated file", label,
				 (unsigned long long)off, b->cipher_len,
				 (unsigned long long)(size - off - hlen));
	b->cipher_off = off + hlen;
	return CKPT_OK;
}

/* Decrypts one block into plain (room for cipher_len bytes); *plen is the
 * plaintext length. */
static ckpt_err decrypt_block(EVP_CIPHER_CTX *ctx, const struct ckpt_key *key,
			      const struct block *b, const uint8_t *cipher,
			      uint8_t *plain, size_t *plen, const char *label,
			      struct ckpt_error *err)
{
	bool gcm = key->mode == CKPT_ENC_AES_GCM;
	int n = 0, fin = 0;

	if (!EVP_CIPHER_CTX_reset(ctx) ||
	    !EVP_DecryptInit_ex(ctx, cipher_of(key, b->legacy), NULL, NULL,
				NULL) ||
	    (gcm && !b->legacy &&
	     !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16, NULL)) ||
	    !EVP_DecryptInit_ex(ctx, NULL, NULL, key->bytes, b->iv) ||
	    (!gcm && !EVP_CIPHER_CTX_set_padding(ctx, 1)) ||
	    !EVP_DecryptUpdate(ctx, plain, &n, cipher, (int)b->cipher_len))
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: OpenSSL refused to decrypt", label);
	if (gcm && b->legacy) { /* never authenticated by MindSpore 1.3-1.6 */
		*plen = (size_t)n;
		return CKPT_OK;
	}
	if (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
					(void *)b->tag))
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: OpenSSL refused the GCM tag", label);
	if (!EVP_DecryptFinal_ex(ctx, plain + n, &fin))
		return ckpt_fail(err, CKPT_ERR_INVAL, b->off,
				 gcm ? "%s: offset %llu: authentication failed: "
				       "wrong key, or the file was changed or "
				       "damaged"
				     : "%s: offset %llu: decryption failed "
				       "(bad padding): wrong key or wrong mode, "
				       "or the file is damaged",
				 label, (unsigned long long)b->off);
	*plen = (size_t)(n + fin);
	return CKPT_OK;
}

static ckpt_err write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return CKPT_ERR_IO;
		p += w;
		n -= (size_t)w;
	}
	return CKPT_OK;
}

ckpt_err ckpt_decrypt_to_memfd(int fd, const char *label,
			       const struct ckpt_key *key, int *out,
			       struct ckpt_stats *st, struct ckpt_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *cipher = NULL, *plain = NULL;
	size_t cap = 0;
	uint64_t off = 0, size = st->file_size;
	int mfd = memfd_create("ckptfs-plain", MFD_CLOEXEC);
	ckpt_err e = CKPT_OK;

	*out = -1;
	if (!ctx || mfd < 0) {
		e = ckpt_fail(err, mfd < 0 ? CKPT_ERR_IO : CKPT_ERR_NOMEM, 0,
			      "%s: cannot set up decryption: %s", label,
			      strerror(errno));
		goto out;
	}
	while (off < size) {
		struct block b;
		size_t plen = 0;

		e = read_header(fd, label, off, size, key, &b, err);
		if (e)
			goto out;
		if (b.cipher_len + 32u > cap) {
			cap = b.cipher_len + 32u;
			free(cipher);
			OPENSSL_clear_free(plain, 0);
			cipher = malloc(cap);
			plain = malloc(cap);
			if (!cipher || !plain) {
				e = ckpt_fail(err, CKPT_ERR_NOMEM, off,
					      "out of memory");
				goto out;
			}
		}
		if (ckpt_pread_full(fd, cipher, b.cipher_len, b.cipher_off) !=
		    (ssize_t)b.cipher_len) {
			e = ckpt_fail(err, CKPT_ERR_IO, b.cipher_off,
				      "%s: read failed: %s", label,
				      strerror(errno));
			goto out;
		}
		e = decrypt_block(ctx, key, &b, cipher, plain, &plen, label,
				  err);
		if (e)
			goto out;
		if (write_all(mfd, plain, plen)) {
			e = ckpt_fail(err, CKPT_ERR_IO, off,
				      "%s: cannot hold the decrypted data in "
				      "memory: %s", label, strerror(errno));
			goto out;
		}
		st->enc_legacy |= b.legacy;
		st->enc_blocks++;
		off = b.cipher_off + b.cipher_len;
	}
	st->enc_mode = key->mode;
	*out = mfd;
	mfd = -1;
out:
	if (plain)
		OPENSSL_cleanse(plain, cap);
	free(plain);
	free(cipher);
	EVP_CIPHER_CTX_free(ctx);
	if (mfd >= 0)
		close(mfd);
	return e;
}

/* ---- encryption ---------------------------------------------------------- */

ckpt_err ckpt_encrypt_block(const struct ckpt_key *key, const uint8_t *plain,
			    size_t len, uint8_t *out, size_t *out_len,
			    struct ckpt_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	bool gcm = key->mode == CKPT_ENC_AES_GCM;
	size_t p = gcm ? 20 : 4;
	uint8_t *iv = out + p + 8, *c = out + p + 28;
	int n = 0, fin = 0;
	ckpt_err e = CKPT_OK;

	if (!ctx || RAND_bytes(iv, 16) != 1 ||
	    !EVP_EncryptInit_ex(ctx, cipher_of(key, false), NULL, NULL,
				NULL) ||
	    (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16,
					 NULL)) ||
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, key->bytes, iv) ||
	    (!gcm && !EVP_CIPHER_CTX_set_padding(ctx, 1)) ||
	    !EVP_EncryptUpdate(ctx, c, &n, plain, (int)len) ||
	    !EVP_EncryptFinal_ex(ctx, c + n, &fin) ||
	    (gcm && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
					 out + 4))) {
		e = ckpt_fail(err, CKPT_ERR_IO, 0, "encryption failed "
			      "(OpenSSL)");
		goto out;
	}
	put_le32(out, magics[key->mode]);
	put_le32(out + p, 24 + (uint32_t)(n + fin));
	put_le32(out + p + 4, 16);
	put_le32(out + p + 24, (uint32_t)(n + fin));
	*out_len = p + 28 + (size_t)(n + fin);
out:
	EVP_CIPHER_CTX_free(ctx);
	return e;
}
