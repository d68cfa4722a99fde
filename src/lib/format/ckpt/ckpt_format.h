/*
 * ckpt_format.h - the on-disk layout of a MindSpore checkpoint, in one place.
 *
 * Source of truth: shared/docs/ckpt-format.md (sections in brackets).
 *
 * STREAM [0, 1]
 *   A .ckpt file has no header, magic or index.  It is a protobuf stream:
 *   the concatenation of serialized `Checkpoint` messages (proto/checkpoint.
 *   proto), each normally holding one `Value`.  On the wire that is a run of
 *   top-level records
 *
 *       0x0A <varint len> <Value: len bytes>        field 1, wire type 2
 *
 *   MindSpore 0.5 appended one unknown top-level field 2 ("model_type");
 *   readers skip unknown top-level fields.  A field 1 with another wire type
 *   is not a checkpoint (MindSpore parallel-strategy files use the suffix).
 *
 *   Value        = tag(1, string) tensor(2, TensorProto) | maptensor(3, Map)
 *   TensorProto  = dims(1, int64, repeated; unpacked 0x08 <varint> each, or
 *                  packed 0x0A <len> <varints>) tensor_type(2, string)
 *                  tensor_content(3, bytes: raw little-endian C-order data)
 *   MapTensorProto = tensor(1, TensorProto) x 3: keys, values, status
 *
 * SLICES [2]
 *   A parameter over 512 MiB is written as consecutive Values with the same
 *   tag; each repeats the full dims; their contents are joined in order and
 *   the last slice's dims and tensor_type win.  Map values are sliced by
 *   rows: each slice holds partial arrays and dims[0] adds up.
 *
 * SIZES [3]
 *   len(content) == prod(dims) * element size, except
 *   - scalars: dims [] (>= 2.3) or [0] (<= 2.2) hold one element;
 *   - "str": UTF-32LE code points, dims [0], any multiple of 4 bytes;
 *   - "BFloat16" of 2.2.10-2.2.14: float32 content (4 bytes per element);
 *     the upper two bytes of each float32 are the bfloat16.
 *
 * CRC TRAILER [5]
 *   Optional 17 bytes after the stream: "crc_num" followed by the CRC-32
 *   (zlib) of every byte before the trailer, as a 10-byte big-endian number.
 *
 * ENCRYPTION [6]: see crypto code (blocks of <= 64 MiB plaintext).
 */
#ifndef CKPT_FORMAT_H
#define CKPT_FORMAT_H

#include "base/base.h"

/* protobuf wire types */
enum {
	CKPT_WT_VARINT = 0,
	CKPT_WT_I64 = 1,
	CKPT_WT_LEN = 2,
	CKPT_WT_SGROUP = 3,
	CKPT_WT_EGROUP = 4,
	CKPT_WT_I32 = 5,
};

/* field numbers */
enum {
	CKPT_FIELD_CHECKPOINT_VALUE = 1,
	CKPT_FIELD_VALUE_TAG = 1,
	CKPT_FIELD_VALUE_TENSOR = 2,
	CKPT_FIELD_VALUE_MAPTENSOR = 3,
	CKPT_FIELD_TENSOR_DIMS = 1,
	CKPT_FIELD_TENSOR_TYPE = 2,
	CKPT_FIELD_TENSOR_CONTENT = 3,
	CKPT_FIELD_MAP_TENSOR = 1,
};

/* MindSpore >= 2.3 cuts a tensor into slices of this many content bytes. */
#define CKPT_SLICE_SIZE 536870912ULL

/* CRC trailer: marker + 10-byte big-endian CRC-32 */
#define CKPT_CRC_MARK "crc_num"
#define CKPT_CRC_MARK_LEN 7
#define CKPT_CRC_TRAILER_LEN 17

/* Limits we impose on what we read (beyond them a file is refused). */
#define CKPT_MAX_TYPE_LEN 64    /* tensor_type string */

/* ---- reading the wire format (reader.c) -------------------------------- */

/* Windowed pread reader used by the scanner: hands out pointers to byte
 * ranges of the source without reading tensor content. */
struct ckpt_reader {
	int fd;
	const char *label;
	uint64_t size;     /* readable bytes (the stream, not the trailer) */
	uint8_t *buf;
	size_t cap;
	uint64_t boff;     /* file offset of buf[0] */
	size_t blen;       /* valid bytes in buf */
};

/* Makes [off, off+n) available and points *p at it.  The pointer stays
 * valid until the next call.  Fails with CKPT_ERR_CORRUPT if the range
 * passes the end, CKPT_ERR_IO if the read fails. */
ckpt_err ckpt_reader_get(struct ckpt_reader *r, uint64_t off, size_t n,
			 const uint8_t **p, struct ckpt_error *err);

/* Decodes a varint at *pos (below limit), advancing *pos. */
ckpt_err ckpt_reader_varint(struct ckpt_reader *r, uint64_t *pos,
			    uint64_t limit, uint64_t *val,
			    struct ckpt_error *err);

/* Skips a field of wire type wt whose key ended at *pos. */
ckpt_err ckpt_reader_skip(struct ckpt_reader *r, uint64_t *pos,
			  uint64_t limit, unsigned wt, struct ckpt_error *err);

#endif /* CKPT_FORMAT_H */
