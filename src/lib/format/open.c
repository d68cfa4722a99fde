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
	&ckpt_format_safetensors,
	&ckpt_format_ckpt,
};

#define NFORMATS (sizeof(formats) / sizeof(formats[0]))

const char *ckpt_format_names(void)
{
	return "ckpt, safetensors";
}

const struct ckpt_format *ckpt_format_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < NFORMATS; i++)
		if (strlen(formats[i]->name) == len &&
		    memcmp(formats[i]->name, name, len) == 0)
			return formats[i];
	return NULL;
}

const struct ckpt_format *ckpt_format_by_extension(const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < NFORMATS; i++) {
		size_t k = strlen(formats[i]->extension);
		if (n > k && strcmp(path + n - k, formats[i]->extension) == 0)
			return formats[i];
	}
	return NULL;
}

const char *ckpt_format_for_path(const char *path)
{
	const struct ckpt_format *f = ckpt_format_by_extension(path);

	return f ? f->name : NULL;
}

bool ckpt_format_known(const char *name, size_t len)
{
	return ckpt_format_by_name(name, len) != NULL;
}

const char *ckpt_format_of(const struct ckpt_file *f)
{
	return f->format->name;
}

ckpt_err ckpt_verify_crc(struct ckpt_file *f, struct ckpt_error *err)
{
	return f->format->verify_crc(f, err);
}

/* The format of the plaintext at fd (size bytes), by its first bytes
 * (only the formats MindSpore encrypts, if it was decrypted); a head that
 * cannot be read is left to the last format's scanner to report. */
static const struct ckpt_format *probe_format(int fd, uint64_t size,
					      bool decrypted)
{
	uint8_t head[CKPT_PROBE_LEN];
	ssize_t n = ckpt_pread_full(fd, head, sizeof(head), 0);
	size_t len = n > 0 ? (size_t)n : 0;

	for (size_t i = 0; i < NFORMATS; i++)
		if ((formats[i]->encryptable || !decrypted) &&
		    formats[i]->probe(head, len, size))
			return formats[i];
	return formats[NFORMATS - 1];
}

/* The format opts force, or NULL (by content); fails for an unknown
 * name. */
static ckpt_err forced_format(const struct ckpt_open_opts *opts,
			      const struct ckpt_format **out,
			      struct ckpt_error *err)
{
	const char *name = opts ? opts->format : NULL;

	*out = name ? ckpt_format_by_name(name, strlen(name)) : NULL;
	if (name && !*out)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "unknown format '%s' (known: %s)", name,
				 ckpt_format_names());
	return CKPT_OK;
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
	f = ckpt_index_new();
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
	e = forced_format(opts, &f->format, err);
	if (e)
		goto fail;
	if (!f->format)
		f->format = probe_format(fd, f->stats.file_size, enc != NULL);
	e = f->format->scan(f, opts, err);
	if (e)
		goto fail;
	*out = f;
	return CKPT_OK;
fail:
	ckpt_close(f);
	return e;
}

/* A key was given: CKPT_OK unless the file is, or is forced to be, of a
 * format MindSpore never encrypts (a plain file that such a format
 * claims, or any file when forced). */
static ckpt_err refuse_key(int fd, const char *path,
			   const struct ckpt_open_opts *opts, uint64_t size,
			   enum ckpt_enc_mode found, struct ckpt_error *err)
{
	const struct ckpt_format *fmt;
	ckpt_err e = forced_format(opts, &fmt, err);

	if (e)
		return e;
	if (!fmt && found == CKPT_ENC_NONE)
		fmt = probe_format(fd, size, false);
	if (!fmt || fmt->encryptable)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_INVAL, 0,
			 "%s is a %s file, and MindSpore has no encrypted %s "
			 "files: give no key or encryption mode",
			 path, fmt->name, fmt->name);
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
	e = refuse_key(fd, path, opts, (uint64_t)st.st_size, found, err);
	if (e) {
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
