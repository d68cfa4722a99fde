/*
 * key.c - the encryption modes, the keys and the OpenSSL cipher setup.
 *
 * A key is read into a page of its own that is locked (kept out of swap)
 * and excluded from core dumps where the system allows, and is wiped when
 * it is freed.  Keys are immutable once read: any number of threads may
 * use one at a time, without locking.  Nothing here may copy key bytes
 * anywhere but into an OpenSSL context.
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

const char *ckpt_crypto_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

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
	mlock(k, page);			 /* best effort: keep out of swap */
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
			      mode == CKPT_ENC_SM4_CBC ? "16" : "16, 24 or 32");
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
		ckpt_fail(err, CKPT_ERR_INVAL, 0,
			  "a key file and a key "
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

enum ckpt_enc_mode ckpt_key_mode(const struct ckpt_key *key)
{
	return key->mode;
}

size_t ckpt_key_len(const struct ckpt_key *key)
{
	return key->len;
}

/* ---- ciphers ------------------------------------------------------------ */

const EVP_CIPHER *ckpt_enc_cipher(const struct ckpt_key *k)
{
	switch (k->mode) {
	case CKPT_ENC_AES_GCM:
		return k->len == 16   ? EVP_aes_128_gcm()
		       : k->len == 24 ? EVP_aes_192_gcm()
				      : EVP_aes_256_gcm();
	case CKPT_ENC_AES_CBC:
		return k->len == 16   ? EVP_aes_128_cbc()
		       : k->len == 24 ? EVP_aes_192_cbc()
				      : EVP_aes_256_cbc();
	case CKPT_ENC_SM4_CBC:
		return EVP_sm4_cbc();
	default:
		return NULL;
	}
}

bool ckpt_enc_ctx_init(EVP_CIPHER_CTX *ctx, const struct ckpt_key *key,
		       const uint8_t *iv, bool legacy, bool enc)
{
	bool gcm = key->mode == CKPT_ENC_AES_GCM;

	return EVP_CIPHER_CTX_reset(ctx) &&
	       EVP_CipherInit_ex(ctx, ckpt_enc_cipher(key), NULL, NULL, NULL,
				 enc) &&
	       (!gcm || legacy ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16, NULL)) &&
	       EVP_CipherInit_ex(ctx, NULL, NULL, key->bytes, iv, enc) &&
	       (gcm || EVP_CIPHER_CTX_set_padding(ctx, enc));
}
