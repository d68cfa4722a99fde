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
 * ENCRYPTION [6]: see crypt/block.c (blocks of <= 64 MiB plaintext).
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

/* the messages of proto/checkpoint.proto */
enum ckpt_pb_msg {
	CKPT_PB_CHECKPOINT,
	CKPT_PB_VALUE,
	CKPT_PB_TENSOR,
	CKPT_PB_MAP,
};

/* MindSpore >= 2.3 cuts a tensor into slices of this many content bytes. */
#define CKPT_SLICE_SIZE 536870912ULL

/* CRC trailer: marker + 10-byte big-endian CRC-32 */
#define CKPT_CRC_MARK "crc_num"
#define CKPT_CRC_MARK_LEN 7
#define CKPT_CRC_TRAILER_LEN 17

/* Limits we impose on what we read (beyond them a file is refused). */
#define CKPT_MAX_TYPE_LEN 64 /* tensor_type string */

/* ---- reading the wire format (reader.c) -------------------------------- */

/* Windowed pread reader used by the scanner: hands out pointers to byte
 * ranges of the source without reading tensor content. */
struct ckpt_reader {
	int fd;
	const char *label;
	uint64_t size; /* readable bytes (the stream, not the trailer) */
	uint8_t *buf;
	size_t cap;
	uint64_t boff; /* file offset of buf[0] */
	size_t blen;   /* valid bytes in buf */
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

/* Decodes the key of a field at *pos (below limit) of a message of type
 * msg, advancing *pos: its field number and wire type.  In a Value or a
 * TensorProto the field number is the low 32 bits of key >> 3, as these
 * have always been read; elsewhere all of it.  (Protobuf allows at most
 * 2^29 - 1 and refuses larger keys; both old readings are kept until that
 * is decided.)  Field number 0, which protobuf never writes, is
 * CKPT_ERR_CORRUPT at the key's offset. */
ckpt_err ckpt_reader_key(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			 enum ckpt_pb_msg msg, uint64_t *field, unsigned *wt,
			 struct ckpt_error *err);

/* Decodes the length of a length-delimited field at *pos, advancing *pos
 * past it, and checks that so many bytes follow before limit; if not,
 * fails with ckpt_reader_overrun(r, at, what, ...), at being the offset
 * the caller's messages name (its key's, usually). */
ckpt_err ckpt_reader_len(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			 uint64_t at, const char *what, uint64_t *len,
			 struct ckpt_error *err);

/* Fails with CKPT_ERR_CORRUPT at offset at: what, of n bytes from pos on,
 * runs past limit, the end of its message (or of the data, when limit is
 * r->size).  The one "runs past the end" message. */
ckpt_err ckpt_reader_overrun(const struct ckpt_reader *r, uint64_t at,
			     const char *what, uint64_t n, uint64_t pos,
			     uint64_t limit, struct ckpt_error *err);

/* Skips a field of wire type wt whose key ended at *pos. */
ckpt_err ckpt_reader_skip(struct ckpt_reader *r, uint64_t *pos, uint64_t limit,
			  unsigned wt, struct ckpt_error *err);

/* ---- scanning (scan.c) and assembling parameters (params.c) -------------
 *
 * scan.c walks the records and decodes each into a struct ckpt_rec_value;
 * params.c joins consecutive records of one name (slices) into a
 * parameter, checks its sizes and stores it in the index.  Both work on
 * one struct ckpt_scan, owned by the thread running ckpt_scan. */

/* One TensorProto as found in one record (only the first ndims dims and
 * the type up to its NUL are meaningful). */
struct ckpt_rec_tensor {
	uint32_t ndims;
	bool has_content; /* a required field */
	uint64_t content_off, content_len;
	char type[CKPT_MAX_TYPE_LEN + 1];
	int64_t dims[CKPT_MAX_DIMS];
};

/* One Value record. */
struct ckpt_rec_value {
	uint64_t off, len; /* the whole record, key and length included */
	char *name;	   /* in the scan's vname buffer, NUL-terminated;
			    * NULL until the tag is read */
	size_t name_len;
	int kind; /* enum ckpt_param_kind, or -1: neither tensor nor map */
	struct ckpt_rec_tensor t[CKPT_MAP_NTENSORS];
	uint32_t nt;
};

/* A buffer kept from record to record. */
struct ckpt_strbuf {
	char *p;
	size_t cap;
};

/* The parameter being assembled from consecutive records: p.name is in
 * the buffer name, the tensor (t[0]) or the map tensors (t[0..2]) have
 * their extents in ext[] and their dims and type in last[]. */
struct ckpt_group {
	bool active;
	struct ckpt_param p;
	struct ckpt_tensor t[CKPT_MAP_NTENSORS];
	struct ckpt_rec_tensor last[CKPT_MAP_NTENSORS];
	uint64_t rows[CKPT_MAP_NTENSORS]; /* map: dims[0] summed over slices */
	struct ckpt_extent *ext[CKPT_MAP_NTENSORS];
	uint32_t ext_cap[CKPT_MAP_NTENSORS];
	struct ckpt_strbuf name;
};

/* The last known type string: [0] of tensors, [1] of map tensors (which
 * may use numpy names). */
struct ckpt_type_memo {
	char type[CKPT_MAX_TYPE_LEN];
	size_t len; /* 0: none yet (the empty type is not known) */
	ckpt_dtype dt;
};

struct ckpt_scan {
	struct ckpt_file *f;
	struct ckpt_reader r;
	struct ckpt_error *err;
	/* "FILE: offset N: parameter 'X'" for messages; as long as a message,
	 * so that a long FILE does not push the offset out */
	char where[sizeof(((struct ckpt_error *)0)->msg)];
	uint64_t where_off;
	/* what ckpt_scan_where formats into where when a message needs it */
	const char *place_name;
	size_t place_len;
	bool place_pending;
	struct ckpt_strbuf vname; /* the name of the record being parsed */
	struct ckpt_type_memo types[2];
	struct ckpt_group g; /* params.c's */
};

/* Formats "FILE: offset N: parameter 'X'" (name NULL: "FILE: offset N")
 * into s->where, the name cut at 80 bytes, and returns it. */
const char *ckpt_scan_at(struct ckpt_scan *s, uint64_t off, const char *name,
			 size_t len);

/* Notes the parameter that the next ckpt_scan_where names, at no cost
 * until a message needs it (this happens for every parameter). */
void ckpt_scan_place(struct ckpt_scan *s, uint64_t off, const char *name,
		     size_t len);

/* "FILE: offset N: parameter 'X'" of the last ckpt_scan_place or
 * ckpt_scan_at; s->where_off is its N. */
const char *ckpt_scan_where(struct ckpt_scan *s);

/* Adds the record v (checked by the scanner) to the parameter being
 * assembled, or finishes that one (see ckpt_params_finish) and starts a
 * new one with v.  A new parameter takes v's name buffer (s->vname) and
 * gives its old one back in its place. */
ckpt_err ckpt_params_take(struct ckpt_scan *s, const struct ckpt_rec_value *v);

/* Validates the parameter being assembled, if any, and stores it in the
 * index with one ckpt_index_alloc block. */
ckpt_err ckpt_params_finish(struct ckpt_scan *s);

/* Frees the buffers of the assembly, s->vname included (not what was
 * stored). */
void ckpt_params_free(struct ckpt_scan *s);

/* scan.c: copies name (len bytes, a NUL after them) into s->vname, the
 * name of the record being parsed, which ckpt_params_take expects. */
ckpt_err ckpt_scan_name(struct ckpt_scan *s, const char *name, size_t len);

/* ---- the index of a file being written (reindex.c) ----------------------
 *
 * encode.c tells every record it emits; the records are assembled as the
 * scan of the written file would assemble them (params.c), without
 * reading a byte of it.  Whatever goes wrong (memory, a parameter the
 * scan would refuse) stops the building, not the encode: the file is
 * scanned after all. */
struct ckpt_out_param; /* format.h */

struct ckpt_reindex {
	struct ckpt_file *f; /* being built; NULL: nothing (any more) */
	struct ckpt_scan s;
	struct ckpt_error err; /* why the building stopped */
};

/* Starts building f (a zeroed struct ckpt_file), or nothing if f is
 * NULL. */
void ckpt_reindex_start(struct ckpt_reindex *x, struct ckpt_file *f);

/* A record of plain tensor p was emitted at offset off: hlen bytes of
 * header written with tensor_type type and p's dims, then clen bytes of
 * content. */
void ckpt_reindex_slice(struct ckpt_reindex *x, const struct ckpt_out_param *p,
			const char *type, uint64_t off, uint64_t hlen,
			uint64_t clen);

/* The records of parameter orig (contiguous in its file) were emitted as
 * they are, from offset off on. */
void ckpt_reindex_copied(struct ckpt_reindex *x, const struct ckpt_param *orig,
			 uint64_t off);

/* The stream ended at stream_size, followed by a crc_num trailer holding
 * crc if has_crc: the index is built (and its format set), or freed. */
void ckpt_reindex_end(struct ckpt_reindex *x, uint64_t stream_size,
		      bool has_crc, uint32_t crc);

/* The encode failed: what was built is freed. */
void ckpt_reindex_drop(struct ckpt_reindex *x);

/* ---- the scan (scan.c) ------------------------------------------------- */

/* Scans f->fd (stream of f->stats.stream_size bytes) into f's index. */
ckpt_err ckpt_scan(struct ckpt_file *f, struct ckpt_error *err);

/* ---- the crc_num trailer (trailer.c) ----------------------------------- */

/* Finds a crc_num trailer at the end of f (has_crc, crc_wide, crc_stored)
 * and sets stream_size to the bytes before it. */
ckpt_err ckpt_trailer_find(struct ckpt_file *f, struct ckpt_error *err);

/* Reads the whole stream and compares its CRC-32 with the trailer
 * (ckpt_verify_crc for this format). */
ckpt_err ckpt_trailer_verify(struct ckpt_file *f, struct ckpt_error *err);

#endif /* CKPT_FORMAT_H */
