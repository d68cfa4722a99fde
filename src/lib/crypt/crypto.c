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
 * This file parses and builds single blocks and handles keys; decrypt.c
 * and encwriter.c run whole files through them on several threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt/crypt.h"

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
	if (keyfile && keyfd >= 0) {
		ckpt_fail(err, CKPT_ERR_INVAL, 0, "a key file and a key "
			  "descriptor exclude each other");
		ckpt_set_hint(err, CKPT_HINT_ONE_KEY, 0);
		return CKPT_ERR_INVAL;
	}
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

const EVP_CIPHER *ckpt_enc_cipher(const struct ckpt_key *k)
{
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

size_t ckpt_enc_header_len(const struct ckpt_key *key)
{
	return key->mode == CKPT_ENC_AES_GCM ? 48 : 32;
}

uint64_t ckpt_enc_block_len(const struct ckpt_key *key, size_t len)
{
	if (key->mode == CKPT_ENC_AES_GCM)
		return 48 + (uint64_t)len;
	return 32 + ((uint64_t)len / 16 + 1) * 16; /* PKCS#7 adds 1-16 */
}

/* ---- block headers ------------------------------------------------------- */

ckpt_err ckpt_enc_read_header(int fd, const char *label, uint64_t off,
			      uint64_t size, const struct ckpt_key *key,
			      struct ckpt_enc_block *b,
			      struct ckpt_error *err)
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
		ckpt_fail(err, CKPT_ERR_INVAL, off, "%s: offset %llu: the "
			  "block is %s but the mode given is %s", label,
			  (unsigned long long)off, ckpt_enc_mode_name(m),
			  ckpt_enc_mode_name(key->mode));
		ckpt_set_hint(err, CKPT_HINT_USE_MODE, (int)m);
		return CKPT_ERR_INVAL;
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

ckpt_err ckpt_enc_plain_len(int fd, const char *label,
			    const struct ckpt_key *key,
			    struct ckpt_enc_block *b, struct ckpt_error *err)
{
	uint8_t tail[32], out[32];
	const uint8_t *iv = b->iv;
	EVP_CIPHER_CTX *ctx;
	int n = 0;
	unsigned pad;
	bool ok;

	if (key->mode == CKPT_ENC_AES_GCM) {
		b->plain_len = b->cipher_len;
		return CKPT_OK;
	}
	if (b->cipher_len % 16)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, b->off,
				 "%s: offset %llu: %u bytes of %s ciphertext "
				 "are not a whole number of 16-byte blocks: "
				 "damaged file", label,
				 (unsigned long long)b->off, b->cipher_len,
				 ckpt_enc_mode_name(key->mode));
	/* the last cipher block, chained to the one before it (or the IV) */
	errno = EIO; /* for a short read */
	if (b->cipher_len >= 32) {
		if (ckpt_pread_full(fd, tail, 32, b->cipher_off +
				    b->cipher_len - 32) != 32)
			goto io;
		iv = tail;
	} else if (ckpt_pread_full(fd, tail + 16, 16, b->cipher_off) != 16) {
		goto io;
	}
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx && EVP_DecryptInit_ex(ctx, ckpt_enc_cipher(key), NULL,
				       key->bytes, iv) &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) &&
	     EVP_DecryptUpdate(ctx, out, &n, tail + 16, 16) && n == 16;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: OpenSSL refused to decrypt", label);
	pad = out[15];
	for (unsigned i = 1; i <= pad && pad <= 16; i++)
		if (out[16 - i] != pad)
			pad = 0;
	OPENSSL_cleanse(out, sizeof(out));
	if (pad < 1 || pad > 16)
		return ckpt_fail(err, CKPT_ERR_INVAL, b->off,
				 "%s: offset %llu: decryption failed (bad "
				 "padding): wrong key or wrong mode, or the "
				 "file is damaged", label,
				 (unsigned long long)b->off);
	b->plain_len = b->cipher_len - pad;
	return CKPT_OK;
io:
	return ckpt_fail(err, CKPT_ERR_IO, b->off, "%s: read at offset %llu "
			 "failed: %s", label, (unsigned long long)b->off,
			 strerror(errno));
}

uint32_t ckpt_enc_magic(enum ckpt_enc_mode mode)
{
	return mode <= CKPT_ENC_SM4_CBC ? magics[mode] : 0;
}
