/*
 * module.c - the MindSpore checkpoint as a format module: the descriptor
 * format/open.c and the commit use (format.h).
 *
 * Owns nothing and takes no lock; the work is in trailer.c and scan.c
 * (reading) and encode.c (writing).  Must stay the last module in open.c's table: a
 * checkpoint has no magic, so its probe takes every file the others
 * leave, and the scanner says what is wrong with one that is not a
 * checkpoint.
 */
#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

/* ckpt_format probe: a protobuf stream has no magic; anything may be one. */
static bool probe(const uint8_t *head, size_t len, uint64_t size)
{
	(void)head;
	(void)len;
	(void)size;
	return true;
}

/* ckpt_format scan: the crc_num trailer (checked unless opts skip it),
 * then the records. */
static ckpt_err scan(struct ckpt_file *f, const struct ckpt_open_opts *opts,
		     struct ckpt_error *err)
{
	ckpt_err e = ckpt_trailer_find(f, err);

	if (!e && f->stats.has_crc && !(opts && opts->skip_crc))
		e = ckpt_trailer_verify(f, err);
	return e ? e : ckpt_scan(f, err);
}

/* ckpt_format holds: MindSpore's tensor_types (not the safetensors-only
 * dtypes). */
static bool holds(ckpt_dtype dt)
{
	return dt <= CKPT_DT_STR;
}

const struct ckpt_format ckpt_format_ckpt = {
	.name = "ckpt",
	.encryptable = true,
	.extension = ".ckpt",
	.name_refused = NULL, /* any UTF-8 name */
	.probe = probe,
	.holds = holds,
	.verify_crc = ckpt_trailer_verify,
	.scan = scan,
	.encode_indexes = true,
	.encode = ckpt_encode,
};
