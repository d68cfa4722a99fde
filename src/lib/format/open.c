/*
 * open.c - opening a checkpoint: the descriptor, the plaintext (MindSpore's
 * encrypted blocks are decrypted into a memfd first: crypt/), the format
 * (the table below, asked with the first bytes), and the format's scan.
 *
 * Takes no lock: a file being opened belongs to its caller.  Must never
 * look inside a format: probe and scan are the modules' (format.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/format.h"
#include "crypt/crypt.h"

/* The formats a file may be in (format.h), asked in this order.  The ckpt
 * format has no magic and takes what the others leave: it stays last. */
static const struct ckpt_format *const formats[] = {
	&ckpt_format_ckpt,
};

#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

/* The format of f, by the first bytes of its plaintext; a head that
 * cannot be read is left to the last format's scanner to report. */
static const struct ckpt_format *pick_format(const struct ckpt_file *f)
{
	uint8_t head[CKPT_PROBE_LEN];
	ssize_t n = ckpt_pread_full(f->fd, head, sizeof(head), 0);
	size_t len = n > 0 ? (size_t)n : 0;

	for (size_t i = 0; i < NFORMATS; i++)
		if (formats[i]->probe(head, len, f->stats.file_size))
			return formats[i];
	return formats[NFORMATS - 1];
}

/* Indexes fd (owned from here on); enc carries what decryption found. */
static ckpt_err open_scan(int fd, const char *label,
			  const struct ckpt_open_opts *opts,
			  const struct ckpt_stats *enc, struct ckpt_file **out,
			  struct ckpt_error *err)
{
	struct ckpt_file *f;
	struct stat st;
	ckpt_err e;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	}
	f->fd = fd;
	f->path = strdup(label);
	if (!f->path) {
		e = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		e = ckpt_fail(err, CKPT_ERR_IO, 0, "%s: %s", label,
			      strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		e = ckpt_fail(err, CKPT_ERR_INVAL, 0, "%s: not a regular file",
			      label);
		goto fail;
	}
	f->stats.disk_size = enc ? enc->file_size : (uint64_t)st.st_size;
	if (enc) {
		f->stats.enc_mode = enc->enc_mode;
		f->stats.enc_legacy = enc->enc_legacy;
		f->stats.enc_blocks = enc->enc_blocks;
	}
	f->stats.file_size = (uint64_t)st.st_size;
	ckpt_ident_of(&st, &f->ident);
	f->stats.stream_size =
		f->stats.file_size; /* unless a trailer ends it */
	e = pick_format(f)->scan(f, opts, err);
	if (e)
		goto fail;
	*out = f;
	return CKPT_OK;
fail:
	ckpt_close(f);
	return e;
}

ckpt_err ckpt_open_fd(int fd, const char *label,
		      const struct ckpt_open_opts *opts, struct ckpt_file **out,
		      struct ckpt_error *err)
{
	return open_scan(fd, label, opts, NULL, out, err);
}

ckpt_err ckpt_open_file(int fd, const char *path,
			const struct ckpt_open_opts *opts,
			struct ckpt_file **out, struct ckpt_error *err)
{
	const struct ckpt_key *key = opts ? opts->key : NULL;
	struct ckpt_stats enc = {0};
	enum ckpt_enc_mode found;
	struct stat st;
	int mfd;
	ckpt_err e;

	*out = NULL;
	found = ckpt_detect_encryption(fd);
	if (!key && found != CKPT_ENC_NONE) {
		close(fd);
		ckpt_fail(err, CKPT_ERR_INVAL, 0,
			  "%s is encrypted (its first "
			  "block is %s) and no key was given",
			  path, ckpt_enc_mode_name(found));
		ckpt_set_hint(err, CKPT_HINT_GIVE_KEY, (int)found);
		return CKPT_ERR_INVAL;
	}
	if (!key)
		return open_scan(fd, path, opts, NULL, out, err);
	if (fstat(fd, &st) < 0) {
		e = ckpt_fail(err, CKPT_ERR_IO, 0, "%s: %s", path,
			      strerror(errno));
		close(fd);
		return e;
	}
	if (found == CKPT_ENC_NONE && st.st_size >= 4) { /* < 4: truncated */
		close(fd);
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "%s is not encrypted, but a key was given",
				 path);
	}
	enc.file_size = (uint64_t)st.st_size;
	e = ckpt_decrypt_to_memfd(fd, path, key, &mfd, &enc, err);
	close(fd);
	if (e)
		return e;
	enc.enc_mode = ckpt_key_mode(key);
	e = open_scan(mfd, path, opts, &enc, out, err);
	if (e == CKPT_ERR_CORRUPT && ckpt_key_mode(key) != CKPT_ENC_AES_GCM &&
	    err) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n,
			 " (after decryption with %s, which cannot always "
			 "tell a wrong key: check the key)",
			 ckpt_enc_mode_name(ckpt_key_mode(key)));
	}
	return e;
}

ckpt_err ckpt_open(const char *path, const struct ckpt_open_opts *opts,
		   struct ckpt_file **out, struct ckpt_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	if (fd < 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: cannot open: %s",
				 path, strerror(errno));
	return ckpt_open_file(fd, path, opts, out, err);
}
