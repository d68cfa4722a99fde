/*
 * reader.c - bounds-checked access to the source for the scanner.
 *
 * The scanner asks for small ranges (keys, lengths, names, dims); the reader
 * serves them from a window filled with pread, so tensor content is never
 * read and the cost of a scan grows with the number of records only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/ckpt/ckpt_format.h"

#define WINDOW (64 * 1024)
#define PAGE 4096

ckpt_err ckpt_reader_get(struct ckpt_reader *r, uint64_t off, size_t n,
			 const uint8_t **p, struct ckpt_error *err)
{
	size_t want;
	ssize_t got;

	if (off > r->size || n > r->size - off)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, off,
				 "%s: offset %llu: %zu bytes needed but the "
				 "data ends at %llu (truncated file?)",
				 r->label, (unsigned long long)off, n,
				 (unsigned long long)r->size);
	if (off >= r->boff && off + n <= r->boff + r->blen) {
		*p = r->buf + (off - r->boff);
		return CKPT_OK;
	}
	/* near the last window: records are small and close together, read
	 * ahead; far from it (after a big tensor): read just a page */
	want = off > r->boff + r->blen + WINDOW ? PAGE : WINDOW;
	if (want < n)
		want = n;
	if (want > r->size - off)
		want = (size_t)(r->size - off);
	if (want > r->cap) {
		uint8_t *nb = realloc(r->buf, want);
		if (!nb)
			return ckpt_fail(err, CKPT_ERR_NOMEM, off,
					 "%s: out of memory", r->label);
		r->buf = nb;
		r->cap = want;
	}
	got = ckpt_pread_full(r->fd, r->buf, want, off);
	if (got < 0)
		return ckpt_fail(err, CKPT_ERR_IO, off, "%s: read at offset "
				 "%llu failed: %s", r->label,
				 (unsigned long long)off, strerror(errno));
	r->boff = off;
	r->blen = (size_t)got;
	if ((size_t)got < n)
		return ckpt_fail(err, CKPT_ERR_IO, off, "%s: file shrank "
				 "while being read (offset %llu)", r->label,
				 (unsigned long long)off);
	*p = r->buf;
	return CKPT_OK;
}

ckpt_err ckpt_reader_varint(struct ckpt_reader *r, uint64_t *pos,
			    uint64_t limit, uint64_t *val,
			    struct ckpt_error *err)
{
	uint64_t start = *pos, v = 0;
	size_t avail = limit - start < 10 ? (size_t)(limit - start) : 10;
	const uint8_t *p;
	ckpt_err e;

	if (avail == 0)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, start,
				 "%s: offset %llu: varint expected but the "
				 "message ends here", r->label,
				 (unsigned long long)start);
	e = ckpt_reader_get(r, start, avail, &p, err);
	if (e)
		return e;
	for (size_t i = 0; i < avail; i++) {
		if (i == 9 && p[i] > 1)
			break;
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*pos = start + i + 1;
			*val = v;
			return CKPT_OK;
		}
	}
	return ckpt_fail(err, CKPT_ERR_CORRUPT, start,
			 "%s: offset %llu: malformed or truncated varint",
			 r->label, (unsigned long long)start);
}

ckpt_err ckpt_reader_skip(struct ckpt_reader *r, uint64_t *pos,
			  uint64_t limit, unsigned wt, struct ckpt_error *err)
{
	uint64_t v, n;
	ckpt_err e;

	switch (wt) {
	case CKPT_WT_VARINT:
		return ckpt_reader_varint(r, pos, limit, &v, err);
	case CKPT_WT_I64:
		n = 8;
		break;
	case CKPT_WT_I32:
		n = 4;
		break;
	case CKPT_WT_LEN:
		e = ckpt_reader_varint(r, pos, limit, &n, err);
		if (e)
			return e;
		break;
	default:
		return ckpt_fail(err, CKPT_ERR_CORRUPT, *pos,
				 "%s: offset %llu: unsupported protobuf wire "
				 "type %u", r->label,
				 (unsigned long long)*pos, wt);
	}
	if (n > limit - *pos)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, *pos,
				 "%s: offset %llu: field of %llu bytes runs "
				 "past the end of its message (ends at %llu)",
				 r->label, (unsigned long long)*pos,
				 (unsigned long long)n,
				 (unsigned long long)limit);
	*pos += n;
	return CKPT_OK;
}
