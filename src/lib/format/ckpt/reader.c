/*
 * reader.c - bounds-checked access to the source for the scanner.
 *
 * The scanner asks for small ranges (keys, lengths, names, dims); the reader
 * serves them from a window filled with pread, so tensor content is never
 * read and the cost of a scan grows with the number of records only.
 *
 * Owns the protobuf wire decoding (varints, keys, lengths, skipping) and
 * its messages.  A reader belongs to one scan on one thread.  It must never
 * hand out a pointer past r->size, nor one that outlives the next call.
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
		return ckpt_fail(err, CKPT_ERR_IO, off,
				 "%s: read at offset "
				 "%llu failed: %s",
				 r->label, (unsigned long long)off,
				 strerror(errno));
	r->boff = off;
	r->blen = (size_t)got;
	if ((size_t)got < n)
		return ckpt_fail(err, CKPT_ERR_IO, off,
				 "%s: file shrank "
				 "while being read (offset %llu)",
				 r->label, (unsigned long long)off);
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
				 "message ends here",
				 r->label, (unsigned long long)start);
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

/* where a field of each message is, in messages */
static const char *const pb_places[] = {
	[CKPT_PB_CHECKPOINT] = "at the top level: not a checkpoint",
	[CKPT_PB_VALUE] = "in a Value",
	[CKPT_PB_TENSOR] = "in a TensorProto",
	[CKPT_PB_MAP] = "in a MapTensorProto",
};

ckpt_err ckpt_reader_key(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			 enum ckpt_pb_msg msg, uint64_t *field, unsigned *wt,
			 struct ckpt_error *err)
{
	uint64_t start = *pos, key;
	bool low32 = msg == CKPT_PB_VALUE || msg == CKPT_PB_TENSOR;
	ckpt_err e;

	e = ckpt_reader_varint(r, pos, limit, &key, err);
	if (e)
		return e;
	*field = low32 ? (uint32_t)(key >> 3) : key >> 3;
	*wt = key & 7;
	if (*field == 0)
		return ckpt_fail(err, CKPT_ERR_CORRUPT, start,
				 "%s: offset %llu: invalid field number 0 %s",
				 r->label, (unsigned long long)start,
				 pb_places[msg]);
	return CKPT_OK;
}

ckpt_err ckpt_reader_overrun(const struct ckpt_reader *r, uint64_t at,
			     const char *what, uint64_t n, uint64_t pos,
			     uint64_t limit, struct ckpt_error *err)
{
	bool data = limit == r->size;

	return ckpt_fail(err, CKPT_ERR_CORRUPT, at,
			 "%s: offset %llu: %s of %llu bytes runs past the end "
			 "of %s (%llu bytes left)%s",
			 r->label, (unsigned long long)at, what,
			 (unsigned long long)n,
			 data ? "the data" : "its message",
			 (unsigned long long)(limit - pos),
			 data ? ": truncated or corrupt file" : "");
}

ckpt_err ckpt_reader_len(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			 uint64_t at, const char *what, uint64_t *len,
			 struct ckpt_error *err)
{
	ckpt_err e;

	e = ckpt_reader_varint(r, pos, limit, len, err);
	if (e)
		return e;
	if (*len > limit - *pos)
		return ckpt_reader_overrun(r, at, what, *len, *pos, limit, err);
	return CKPT_OK;
}

ckpt_err ckpt_reader_skip(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			  unsigned wt, struct ckpt_error *err)
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
				 "type %u",
				 r->label, (unsigned long long)*pos, wt);
	}
	if (n > limit - *pos)
		return ckpt_reader_overrun(r, *pos, "field", n, *pos, limit,
					   err);
	*pos += n;
	return CKPT_OK;
}
