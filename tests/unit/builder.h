/*
 * builder.h - hand-building protobuf byte streams for unit tests, so that
 * tests can produce exactly the (possibly malformed) bytes they need, plus
 * a few helpers shared by the unit tests (temporary files, fixtures).
 */
#ifndef CKPT_TEST_BUILDER_H
#define CKPT_TEST_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.pb-c.h"
#include "ckpt.h"

struct buf {
	uint8_t *p;
	size_t len, cap;
};

void buf_bytes(struct buf *b, const void *data, size_t n);
void buf_append(struct buf *b, const struct buf *src);
void buf_varint(struct buf *b, uint64_t v);
void buf_key(struct buf *b, unsigned field, unsigned wt);
/* field with wire type 2 and the given payload */
void buf_len_field(struct buf *b, unsigned field, const void *data, size_t n);
void buf_free(struct buf *b);

/* A TensorProto with unpacked dims (ndims may be 0). */
void buf_tensor(struct buf *b, const int64_t *dims, unsigned ndims,
		const char *type, const void *content, size_t n);
/* The same with packed dims (0x0A <len> <varints>); ndims may be 0. */
void buf_tensor_packed(struct buf *b, const int64_t *dims, unsigned ndims,
		       const char *type, const void *content, size_t n);
/* One top-level record: 0x0A len Value{tag, tensor}.  Returns the offset in
 * b of the tensor_content bytes (they end the record). */
size_t buf_record(struct buf *b, const char *tag, const int64_t *dims,
		  unsigned ndims, const char *type, const void *content,
		  size_t n);
/* One top-level record: 0x0A len Value{tag (tag_len bytes), field: payload}
 * (field 2 = tensor, 3 = maptensor). */
void buf_value_record(struct buf *b, const char *tag, size_t tag_len,
		      unsigned field, const struct buf *payload);
/* One top-level map record; keys/values/status are TensorProto bytes. */
void buf_map_record(struct buf *b, const char *tag, const struct buf *keys,
		    const struct buf *values, const struct buf *status);
/* Appends the 17-byte crc_num trailer for the current contents of b. */
void buf_crc_trailer(struct buf *b);
/* Appends a map parameter name: keys int64 [2] {7, 8}, values float32
 * [2,3] {1..6}, status int32 [2] {0, 1}. */
void buf_small_map(struct buf *b, const char *name);
/* Appends c as serialized by protobuf-c (checkpoint__pack). */
void buf_pack_checkpoint(struct buf *b, const Checkpoint *c);

/* Independent bitwise CRC-32 (zlib), used as a reference. */
/* p without its const: protobuf-c's structs take non-const pointers to
 * what they only read (tag and type strings, content). */
#define UNCONST(p) ((void *)(uintptr_t)(p))

uint32_t ref_crc32(const void *data, size_t n);

/* Writes b to a new temporary file and returns its path (malloc'd). */
char *buf_to_tmpfile(const struct buf *b);

/* Writes b to a temporary file, ckpt_open()s it and removes the file again
 * (the open descriptor keeps the data).  Returns ckpt_open's result; *path
 * (if path is non-NULL) receives the name the file had (malloc'd). */
ckpt_err buf_open(const struct buf *b, const struct ckpt_open_opts *opts,
		  struct ckpt_file **f, struct ckpt_error *err, char **path);

/* Directory of the real fixtures: $CKPT_FIXTURES, else tests/fixtures/real
 * of the source tree. */
const char *fixtures_dir(void);

/* Unpacks data[0, n) with protobuf-c (an independent parser) and asserts
 * (cmocka) that f shows the same parameters: consecutive equal tags joined,
 * a later duplicate replacing an earlier one in place, last slice's dims and
 * tensor_type, map rows summed, and the same stored and shown bytes.
 * Returns false, checking nothing, if protobuf-c cannot unpack the data. */
bool oracle_check(const uint8_t *data, size_t n, const struct ckpt_file *f);

/* Reads all shown bytes of t with ckpt_tensor_read (asserting that exactly
 * t->size bytes come back); returns a malloc'd buffer. */
/* ckpt_tensor_read as a count: the bytes read, or -1 when it fails. */
ssize_t tensor_read_n(const struct ckpt_file *f, const struct ckpt_tensor *t,
		      void *buf, size_t size, uint64_t off,
		      struct ckpt_error *err);

uint8_t *read_tensor(const struct ckpt_file *f, const struct ckpt_tensor *t);

/* Reads a whole file into b; returns false on failure. */
bool buf_read_file(struct buf *b, const char *path);

#endif
