/*
 * module.c - the MindSpore checkpoint as a format module: the descriptor
 * index/open.c and the commit use (format.h).
 *
 * Owns nothing and takes no lock; the work is in scan.c (reading) and
 * encode.c (writing).  Must stay the last module in open.c's table: a
 * checkpoint has no magic, so its probe takes every file the others
 * leave, and the scanner says what is wrong with one that is not a
 * checkpoint.
 */
#include "format/format.h"

/* ckpt_format probe: a protobuf stream has no magic; anything may be one. */
static bool probe(const uint8_t *head, size_t len, uint64_t size)
{
	(void)head;
	(void)len;
	(void)size;
	return true;
}

const struct ckpt_format ckpt_format_ckpt = {
	.name = "ckpt",
	.encryptable = true,
	.probe = probe,
	.scan = ckpt_scan,
	.encode = ckpt_encode,
};
