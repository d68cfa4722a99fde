/*
 * encode.c - a tree as a MindSpore checkpoint: the encode of the ckpt
 * format module (module.c).
 *
 * Output follows MindSpore >= 2.3 (format document, section 11): one
 * Checkpoint message per parameter slice, fields in number order, dims
 * unpacked, exact dtype spellings, slices of CKPT_SLICE_SIZE bytes.  A
 * parameter whose bytes, dtype, shape and name are unchanged (and a map
 * parameter, always) is emitted as the range of its record in the old
 * file, so its original encoding is kept byte for byte.  The crc_num
 * trailer [5] is this format's too: the encode watches every byte it
 * emits (struct ckpt_emitter) and appends the trailer last.  Encryption
 * [6] wraps the whole stream and is done by the commit's encrypted sink;
 * an encrypted checkpoint carries no trailer.
 *
 * When the snapshot asks for it, every record emitted is also told to
 * reindex.c, which builds the new file's index without reading it; the
 * encode counts the bytes it emits for that (at).
 *
 * Knows the tree only as the commit describes it (struct ckpt_snapshot);
 * takes no lock (the commit holds the tree's).  It must never write a
 * file itself: everything goes through the emitter, in file order.
 */
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

/* One encode: where it emits, how far it is, the index it builds. */
struct enc {
	struct ckpt_emitter *em;
	uint64_t at; /* bytes emitted so far */
	struct ckpt_reindex x;
};

/* The one-byte key of field f with wire type wt (every field we write). */
#define KEY(f, wt) ((uint8_t)((f) << 3 | (wt)))

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A key and a varint at p; their length. */
static size_t put_field(uint8_t *p, uint8_t key, uint64_t v)
{
	*p = key;
	return 1 + put_varint(p + 1, v);
}

/* Emits the header of one record of a tensor slice: everything up to the
 * content bytes, which the caller emits (clen of them). */
static ckpt_err put_header(struct enc *c, const struct ckpt_out_param *p,
			   const char *type, uint64_t clen,
			   struct ckpt_error *err)
{
	size_t tlen = strlen(type), dlen = 0, n = 0;
	uint64_t tensor_len, value_len;
	uint8_t *h;
	ckpt_err r;

	for (uint32_t i = 0; i < p->ndims; i++)
		dlen += 1 + varint_len((uint64_t)p->dims[i]);
	tensor_len = dlen + 1 + varint_len(tlen) + tlen + 1 + varint_len(clen) +
		     clen;
	value_len = 1 + varint_len(p->name_len) + p->name_len + 1 +
		    varint_len(tensor_len) + tensor_len;
	h = malloc(p->name_len + dlen + tlen + 64);
	if (!h)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	n += put_field(h + n, KEY(CKPT_FIELD_CHECKPOINT_VALUE, CKPT_WT_LEN),
		       value_len);
	n += put_field(h + n, KEY(CKPT_FIELD_VALUE_TAG, CKPT_WT_LEN),
		       p->name_len);
	memcpy(h + n, p->name, p->name_len);
	n += p->name_len;
	n += put_field(h + n, KEY(CKPT_FIELD_VALUE_TENSOR, CKPT_WT_LEN),
		       tensor_len);
	for (uint32_t i = 0; i < p->ndims; i++) /* unpacked */
		n += put_field(h + n,
			       KEY(CKPT_FIELD_TENSOR_DIMS, CKPT_WT_VARINT),
			       (uint64_t)p->dims[i]);
	n += put_field(h + n, KEY(CKPT_FIELD_TENSOR_TYPE, CKPT_WT_LEN), tlen);
	memcpy(h + n, type, tlen);
	n += tlen;
	n += put_field(h + n, KEY(CKPT_FIELD_TENSOR_CONTENT, CKPT_WT_LEN),
		       clen);
	r = c->em->ops->bytes(c->em, h, n);
	free(h);
	if (!r)
		ckpt_reindex_slice(&c->x, p, type, c->at, n, clen);
	c->at += n;
	return r;
}

/* True if p's records in its file can be copied as they are. */
static bool copyable(const struct ckpt_out_param *p)
{
	return p->orig && p->orig->rec_len && (p->is_map || p->untouched);
}

/* Emits the records of parameter p. */
static ckpt_err put_param(struct enc *c, struct ckpt_out_param *p,
			  struct ckpt_error *err)
{
	struct ckpt_emitter *em = c->em;
	uint64_t off = 0;
	ckpt_err r;

	if (copyable(p)) {
		ckpt_reindex_copied(&c->x, p->orig, c->at);
		c->at += p->orig->rec_len;
		return em->ops->range(em, p->orig_fd, p->orig->rec_off,
				      p->orig->rec_len);
	}
	if (p->is_map)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "map parameter '%s' is stored in separated "
				 "records, which cannot be rewritten yet",
				 p->fname);
	if (p->dtype > CKPT_DT_STR) /* a safetensors dtype */
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "parameter '%s' is %s, which MindSpore's "
				 "checkpoint format has no tensor_type for: "
				 "set another user.dtype, or keep it in a "
				 "safetensors file",
				 p->fname, ckpt_dtype_name(p->dtype));
	if (p->ndims == 0 && p->dtype == CKPT_DT_STR) {
		p->dims[0] = 0; /* str is always written with dims [0] */
		p->ndims = 1;
	}
	do { /* slices of CKPT_SLICE_SIZE bytes; one (maybe empty) at least */
		uint64_t n = p->size - off < CKPT_SLICE_SIZE ? p->size - off
							     : CKPT_SLICE_SIZE;
		r = put_header(c, p, ckpt_dtype_name(p->dtype), n, err);
		if (!r)
			r = em->ops->entry(em, p->entry, off, n);
		if (r)
			return r;
		c->at += n;
		off += n;
	} while (off < p->size);
	return CKPT_OK;
}

/* ckpt_emitter watch: the CRC-32 of the stream so far, at ctx. */
static void crc_watch(void *ctx, const void *p, size_t n)
{
	uint32_t *crc = ctx;

	*crc = ckpt_crc32(*crc, p, n);
}

/* Emits the trailer that ends a stream whose CRC-32 is crc. */
static ckpt_err put_trailer(struct ckpt_emitter *em, uint32_t crc)
{
	uint8_t tr[CKPT_CRC_TRAILER_LEN] = CKPT_CRC_MARK;

	for (int k = 0; k < 4; k++) /* big-endian, in the last 4 bytes */
		tr[CKPT_CRC_TRAILER_LEN - 1 - k] = (uint8_t)(crc >> (8 * k));
	return em->ops->bytes(em, tr, sizeof(tr));
}

ckpt_err ckpt_encode(const struct ckpt_snapshot *s, struct ckpt_emitter *em,
		     struct ckpt_error *err)
{
	struct enc c = {.em = em};
	struct ckpt_out_param p;
	uint32_t crc = 0;
	ckpt_err r = CKPT_OK;

	ckpt_reindex_start(&c.x, s->index);
	if (s->checksum) {
		em->watch = crc_watch;
		em->watch_ctx = &crc;
	}
	for (size_t i = 0; i < s->count && !r; i++) {
		r = s->param(s, i, &p, err);
		if (!r && !p.skip)
			r = put_param(&c, &p, err);
	}
	em->watch = NULL; /* the trailer is not part of its own CRC */
	em->watch_ctx = NULL;
	if (!r && s->checksum)
		r = put_trailer(em, crc);
	if (r)
		ckpt_reindex_drop(&c.x);
	else
		ckpt_reindex_end(&c.x, c.at, s->checksum, crc);
	return r;
}
