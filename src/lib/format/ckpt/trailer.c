/*
 * trailer.c - the crc_num trailer [5]: the 17 bytes some checkpoints end
 * with, which the stream (the file without them) is checked against.
 *
 * Part of the ckpt format, not of opening in general: the module's scan
 * (module.c) finds and checks it before the records are walked.  Takes no
 * lock; reads f->fd and fills f->stats only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

/* Detects the crc_num trailer and sets stream_size. */
ckpt_err ckpt_trailer_find(struct ckpt_file *f, struct ckpt_error *err)
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

ckpt_err ckpt_trailer_verify(struct ckpt_file *f, struct ckpt_error *err)
{
	uint64_t end = f->stats.stream_size, bad;
	uint32_t crc = 0;

	if (!f->stats.has_crc)
		return CKPT_OK;
	if (f->stats.crc_wide)
		return ckpt_fail(err, CKPT_ERR_CRC, end,
				 "%s: offset %llu: the crc_num trailer holds a "
				 "number wider than 32 bits, which is not a "
				 "CRC-32; the file is damaged",
				 f->path, (unsigned long long)end);
	if (ckpt_crc32_fd(f->fd, 0, end, &crc, &bad) != 0)
		return errno == ENOMEM
			       ? ckpt_fail(err, CKPT_ERR_NOMEM, 0,
					   "out of memory")
			       : ckpt_fail(err, CKPT_ERR_IO, bad,
					   "%s: read at offset %llu failed "
					   "while checking the CRC (%s): the "
					   "file may have been rewritten "
					   "underneath",
					   f->path, (unsigned long long)bad,
					   strerror(errno));
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
