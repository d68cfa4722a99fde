/*
 * block.c - the header of one encrypted block, read and written in one
 * place (format document, section 6).
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
 * Owns the layout and its checks; decrypt.c and encwriter.c run whole
 * files through it.  No state, no locking.  A header is never trusted
 * beyond what has been checked here against the file's size.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "crypt/crypt.h"

/* The layout: the magic, the tag of GCM, then a part every layout has. */
enum {
	HDR_MAGIC = 0,
	HDR_TAG = 4,	     /* GCM, current layout */
	HDR_COMMON_GCM = 20, /* where the common part starts with a tag */
	HDR_COMMON = 4,	     /* ... and without one */
	/* the common part, from its start */
	COM_BLOCK_SIZE = 0, /* 24 + cipher_len: iv_len, iv, cipher_len */
	COM_IV_LEN = 4,
	COM_IV = 8,
	COM_CIPHER_LEN = 24,
	COM_LEN = 28,
	IV_LEN = 16,
	TAG_LEN = 16,
	HDR_MIN = HDR_COMMON + COM_LEN, /* 32: the CBC modes, legacy GCM */
};

_Static_assert(HDR_COMMON_GCM + COM_LEN == CKPT_ENC_HEADER_MAX,
	       "a GCM header is the largest");

static const uint32_t magics[] = {
	[CKPT_ENC_AES_GCM] = 0x7F3A5ED8,
	[CKPT_ENC_AES_CBC] = 0x7F3A5ED9,
	[CKPT_ENC_SM4_CBC] = 0x7F3A5EDA,
};

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

size_t ckpt_enc_header_len(const struct ckpt_key *key)
{
	return key->mode == CKPT_ENC_AES_GCM ? HDR_COMMON_GCM + COM_LEN
					     : HDR_MIN;
}

uint64_t ckpt_enc_block_len(const struct ckpt_key *key, size_t len)
{
	if (key->mode == CKPT_ENC_AES_GCM)
		return ckpt_enc_header_len(key) + (uint64_t)len;
	/* PKCS#7 adds 1-16 bytes */
	return HDR_MIN + ((uint64_t)len / 16 + 1) * 16;
}

size_t ckpt_enc_put_header(const struct ckpt_key *key, const uint8_t *iv,
			   const uint8_t *tag, uint32_t cipher_len,
			   uint8_t h[CKPT_ENC_HEADER_MAX])
{
	bool gcm = key->mode == CKPT_ENC_AES_GCM;
	uint8_t *c = h + (gcm ? HDR_COMMON_GCM : HDR_COMMON);

	put_le32(h + HDR_MAGIC, magics[key->mode]);
	if (gcm)
		memcpy(h + HDR_TAG, tag, TAG_LEN);
	put_le32(c + COM_BLOCK_SIZE, COM_CIPHER_LEN + cipher_len);
	put_le32(c + COM_IV_LEN, IV_LEN);
	memcpy(c + COM_IV, iv, IV_LEN);
	put_le32(c + COM_CIPHER_LEN, cipher_len);
	return ckpt_enc_header_len(key);
}

/* Whether a common part seems to start at c: the legacy GCM layout (no
 * tag) is told from the current one by this at HDR_COMMON.  (32-bit sums,
 * as the layout's integers.) */
static bool common_at(const uint8_t *c)
{
	return le32(c + COM_IV_LEN) == IV_LEN &&
	       le32(c + COM_BLOCK_SIZE) ==
		       (uint32_t)COM_CIPHER_LEN + le32(c + COM_CIPHER_LEN);
}

/* Checks the magic of the header h (n bytes read at off) against key and
 * tells the legacy layout; *common is where the common part starts. */
static ckpt_err check_magic(const uint8_t *h, ssize_t n, const char *label,
			    uint64_t off, const struct ckpt_key *key,
			    struct ckpt_enc_block *b, size_t *common,
			    struct ckpt_error *err)
{
	enum ckpt_enc_mode m = mode_of_magic(le32(h + HDR_MAGIC));

	if (m == CKPT_ENC_NONE)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: no encrypted block starts "
				 "here (bad magic 0x%08x): damaged file",
				 label, (unsigned long long)off,
				 le32(h + HDR_MAGIC));
	*common = HDR_COMMON;
	if (m == CKPT_ENC_AES_GCM && common_at(h + HDR_COMMON)) {
		b->legacy = true; /* 1.3-1.6 */
		return CKPT_OK;
	}
	if (m != key->mode) {
		ckpt_fail(err, CKPT_ERR_INVAL, off,
			  "%s: offset %llu: the "
			  "block is %s but the mode given is %s",
			  label, (unsigned long long)off, ckpt_enc_mode_name(m),
			  ckpt_enc_mode_name(key->mode));
		ckpt_set_hint(err, CKPT_HINT_USE_MODE, (int)m);
		return CKPT_ERR_INVAL;
	}
	if (m != CKPT_ENC_AES_GCM)
		return CKPT_OK;
	if (n < HDR_COMMON_GCM + COM_LEN)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: truncated encrypted "
				 "block header",
				 label, (unsigned long long)off);
	memcpy(b->tag, h + HDR_TAG, TAG_LEN);
	*common = HDR_COMMON_GCM;
	return CKPT_OK;
}

/* Most ciphertext block b of a file of key's mode may hold. */
static uint32_t cipher_max(const struct ckpt_enc_block *b,
			   const struct ckpt_key *key)
{
	if (b->legacy)
		return CKPT_ENC_LEGACY_MAX;
	/* CBC: the padding of a full block */
	return key->mode == CKPT_ENC_AES_GCM ? CKPT_ENC_BLOCK
					     : CKPT_ENC_BLOCK + 16;
}

ckpt_err ckpt_enc_read_header(int fd, const char *label, uint64_t off,
			      uint64_t size, const struct ckpt_key *key,
			      struct ckpt_enc_block *b, struct ckpt_error *err)
{
	uint8_t h[CKPT_ENC_HEADER_MAX];
	const uint8_t *c;
	size_t hlen;
	uint32_t block_size, iv_len;
	ssize_t n;
	ckpt_err e;

	memset(b, 0, sizeof(*b));
	b->off = off;
	n = ckpt_pread_full(
		fd, h, size - off < sizeof(h) ? size - off : sizeof(h), off);
	if (n < 0)
		return ckpt_fail(err, CKPT_ERR_IO, off,
				 "%s: read at offset "
				 "%llu failed: %s",
				 label, (unsigned long long)off,
				 strerror(errno));
	if (n < HDR_MIN)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: truncated encrypted block "
				 "(%zd bytes left, a header needs 32 or 48)",
				 label, (unsigned long long)off, n);
	e = check_magic(h, n, label, off, key, b, &hlen, err);
	if (e)
		return e;
	c = h + hlen;
	block_size = le32(c + COM_BLOCK_SIZE);
	iv_len = le32(c + COM_IV_LEN);
	memcpy(b->iv, c + COM_IV, IV_LEN);
	b->cipher_len = le32(c + COM_CIPHER_LEN);
	hlen += COM_LEN;
	if (iv_len != IV_LEN || b->cipher_len == 0 ||
	    block_size != COM_CIPHER_LEN + (uint64_t)b->cipher_len)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block header is "
				 "inconsistent (block_size %u, iv_len %u, "
				 "cipher_len %u): damaged file",
				 label, (unsigned long long)off, block_size,
				 iv_len, b->cipher_len);
	if (b->cipher_len > cipher_max(b, key))
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block claims %u "
				 "bytes, more than a block may hold",
				 label, (unsigned long long)off, b->cipher_len);
	if (b->cipher_len > size - off - hlen)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: encrypted block of %u bytes "
				 "runs past the end of the file (%llu bytes "
				 "left): truncated file",
				 label, (unsigned long long)off, b->cipher_len,
				 (unsigned long long)(size - off - hlen));
	b->cipher_off = off + hlen;
	return CKPT_OK;
}

/* The PKCS#7 padding length at the end of out[16], or 0 if malformed. */
static unsigned pkcs7_pad(const uint8_t *out)
{
	unsigned pad = out[15];

	for (unsigned i = 1; i <= pad && pad <= 16; i++)
		if (out[16 - i] != pad)
			pad = 0;
	return pad <= 16 ? pad : 0;
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
				 "damaged file",
				 label, (unsigned long long)b->off,
				 b->cipher_len, ckpt_enc_mode_name(key->mode));
	/* the last cipher block, chained to the one before it (or the IV) */
	errno = EIO; /* for a short read */
	if (b->cipher_len >= 32) {
		if (ckpt_pread_full(fd, tail, 32,
				    b->cipher_off + b->cipher_len - 32) != 32)
			goto io;
		iv = tail;
	} else if (ckpt_pread_full(fd, tail + 16, 16, b->cipher_off) != 16) {
		goto io;
	}
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx && ckpt_enc_ctx_init(ctx, key, iv, false, false) &&
	     EVP_DecryptUpdate(ctx, out, &n, tail + 16, 16) && n == 16;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return ckpt_fail(err, CKPT_ERR_IO, b->off,
				 "%s: OpenSSL refused to decrypt", label);
	pad = pkcs7_pad(out);
	OPENSSL_cleanse(out, sizeof(out));
	if (pad < 1)
		return ckpt_fail(err, CKPT_ERR_INVAL, b->off,
				 "%s: offset %llu: decryption failed (bad "
				 "padding): wrong key or wrong mode, or the "
				 "file is damaged",
				 label, (unsigned long long)b->off);
	b->plain_len = b->cipher_len - pad;
	return CKPT_OK;
io:
	return ckpt_fail(err, CKPT_ERR_IO, b->off,
			 "%s: read at offset %llu "
			 "failed: %s",
			 label, (unsigned long long)b->off, strerror(errno));
}
