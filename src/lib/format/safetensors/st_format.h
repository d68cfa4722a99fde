/*
 * st_format.h - the safetensors format module's parts (safetensors-format.md
 * in the format documents; Hugging Face's README "Format"):
 *
 *   [u64 LE N][N bytes of JSON header, space padded][data]
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [BEGIN, END]} (relative to the data, back to back, no holes) and may
 * hold "__metadata__": {key: string}.
 *
 *   module.c  the descriptor: probe, and the scan (header.c, then crc.c)
 *   header.c  the header parsed (jansson) and validated into the index
 *   crc.c     MindSpore's crc_num over the tensors (section 1.8)
 *   encode.c  a snapshot written as Hugging Face's serializer writes it
 *   json.c    the serializer's JSON text (serde_json's escaping)
 *   arena.c   the memory the JSON tree of a header lives in
 */
#ifndef CKPT_ST_FORMAT_H
#define CKPT_ST_FORMAT_H

#include "format/format.h"

/* The largest header Hugging Face's loader and MindSpore's accept. */
#define ST_HEADER_MAX 100000000ULL

/* The metadata key MindSpore 2.5+ stores its CRC under. */
#define ST_CRC_KEY "crc_num"

/* header.c: reads and validates the header of f (f->stats.file_size
 * bytes) into f's index (tensors in data order), metadata and stats;
 * errors name the file, the tensor and the problem. */
ckpt_err st_scan_header(struct ckpt_file *f, struct ckpt_error *err);

/* crc.c: the CRC-32 MindSpore's crc_num holds, over f's tensors: for
 * each name in byte order, crc32(name) then crc32(bytes(array)), where
 * bytes() of a 0-d integer array gives that many zero bytes.  Fails
 * (CKPT_ERR_UNSUPPORTED) where MindSpore's own computation fails. */
ckpt_err st_crc_of_file(struct ckpt_file *f, uint32_t *crc,
			struct ckpt_error *err);

/* crc.c: what one tensor adds to a crc_num: name (len bytes), then its
 * bytes, read through rd(ctx, off, buf, n) in pieces; dt, ndims as
 * written. */
typedef ckpt_err (*st_read_fn)(void *ctx, uint64_t off, void *buf, size_t n,
			       struct ckpt_error *err);
ckpt_err st_crc_tensor(uint32_t *crc, const char *name, size_t len,
		       ckpt_dtype dt, uint32_t ndims, uint64_t size,
		       st_read_fn rd, void *ctx, struct ckpt_error *err);

/* module.c: ckpt_format name_refused: "__metadata__", and names with a
 * NUL byte. */
const char *st_name_refused(const char *name, size_t len);

/* encode.c: the encode of ckpt_format_safetensors (struct ckpt_format). */
ckpt_err st_encode(const struct ckpt_snapshot *s, struct ckpt_emitter *em,
		   struct ckpt_error *err);

/* ---- arena.c: what jansson parses into --------------------------------- */

/* From st_arena_begin to st_arena_end, jansson's allocations on this
 * thread come from one arena and its frees do nothing: the JSON tree made
 * in between is dropped by st_arena_end (never json_decref'd).  NULL when
 * out of memory (jansson then gets malloc as elsewhere).  Not nested. */
struct st_arena *st_arena_begin(void);
void st_arena_end(struct st_arena *a);

/* ---- json.c: a growing text -------------------------------------------- */

struct st_text {
	char *p;
	size_t len, cap;
	bool nomem; /* an append failed: the text is incomplete */
};

/* Appends n bytes / a JSON string of s (len bytes, quoted and escaped as
 * serde_json does) / a decimal number to t. */
void st_text_put(struct st_text *t, const char *s, size_t n);
void st_text_str(struct st_text *t, const char *s, size_t len);
void st_text_u64(struct st_text *t, uint64_t v);
void st_text_free(struct st_text *t);

#endif /* CKPT_ST_FORMAT_H */
