/*
 * open.c - opening a checkpoint: size, crc trailer, its format (the table
 * below), scan; and closing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/ckpt/ckpt_format.h"
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

/* Detects the crc_num trailer and sets stream_size. */
static ckpt_err find_trailer(struct ckpt_file *f, struct ckpt_error *err)
{
	uint8_t t[CKPT_CRC_TRAILER_LEN];
	uint64_t size = f->stats.file_size, crc = 0;
	uint8_t high = 0;
	ssize_t n;

	f->stats.stream_size = size;
	if (size < CKPT_CRC_TRAILER_LEN)
		return CKPT_OK;
	n = ckpt_pread_full(f->fd, t, sizeof(t), size - sizeof(t));
	if (n != (ssize_t)sizeof(t))
		return ckpt_fail(err, CKPT_ERR_IO, size - sizeof(t),
				 "%s: cannot read the last %zu bytes: %s",
				 f->path, sizeof(t),
				 n < 0 ? strerror(errno) : "short read");
	if (memcmp(t, CKPT_CRC_MARK, CKPT_CRC_MARK_LEN) != 0)
		return CKPT_OK;
	/* a 10-byte big-endian number: only the last 4 bytes may be set */
	for (int i = CKPT_CRC_MARK_LEN; i < CKPT_CRC_TRAILER_LEN - 4; i++)
		high |= t[i];
	for (int i = CKPT_CRC_TRAILER_LEN - 4; i < CKPT_CRC_TRAILER_LEN; i++)
		crc = crc << 8 | t[i];
	f->stats.crc_wide = high != 0;
	f->stats.has_crc = true;
	f->stats.crc_stored = (uint32_t)crc;
	f->stats.stream_size = size - CKPT_CRC_TRAILER_LEN;
	return CKPT_OK;
}

ckpt_err ckpt_verify_crc(struct ckpt_file *f, struct ckpt_error *err)
{
	enum {
		CHUNK = 1 << 20
	};
	uint64_t off = 0, end = f->stats.stream_size;
	uint32_t crc = 0;
	uint8_t *buf;

	if (!f->stats.has_crc)
		return CKPT_OK;
	if (f->stats.crc_wide)
		return ckpt_fail(err, CKPT_ERR_CRC, end,
				 "%s: offset %llu: the crc_num trailer holds a "
				 "number wider than 32 bits, which is not a "
				 "CRC-32; the file is damaged",
				 f->path, (unsigned long long)end);
	buf = malloc(CHUNK);
	if (!buf)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	while (off < end) {
		size_t n = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
		if (ckpt_pread_full(f->fd, buf, n, off) != (ssize_t)n) {
			free(buf);
			return ckpt_fail(err, CKPT_ERR_IO, off,
					 "%s: read at offset %llu failed while "
					 "checking the CRC",
					 f->path, (unsigned long long)off);
		}
		crc = ckpt_crc32(crc, buf, n);
		off += n;
	}
	free(buf);
	f->stats.crc_checked = true;
	f->stats.crc_computed = crc;
	if (crc != f->stats.crc_stored)
		return ckpt_fail(err, CKPT_ERR_CRC, end,
				 "%s: CRC mismatch: the crc_num trailer says "
				 "0x%08x but the data has 0x%08x; the file is "
				 "damaged",
				 f->path, f->stats.crc_stored, crc);
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
	e = find_trailer(f, err);
	if (e)
		goto fail;
	if (f->stats.has_crc && !(opts && opts->skip_crc)) {
		e = ckpt_verify_crc(f, err);
		if (e)
			goto fail;
	}
	e = pick_format(f)->scan(f, err);
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

bool ckpt_file_changed(const struct ckpt_file *f)
{
	struct stat st;

	return fstat(f->fd, &st) != 0 || !ckpt_ident_same(&f->ident, &st);
}

void ckpt_close(struct ckpt_file *f)
{
	if (!f)
		return;
	ckpt_index_free(f);
	free(f->path);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

const char *ckpt_path(const struct ckpt_file *f)
{
	return f->path;
}

int ckpt_fd(const struct ckpt_file *f)
{
	return f->fd;
}

const struct ckpt_stats *ckpt_stats(const struct ckpt_file *f)
{
	return &f->stats;
}
