/*
 * builder.h - hand-building protobuf byte streams for unit tests, so that
 * tests can produce exactly the (possibly malformed) bytes they need.
 */
#ifndef CKPT_TEST_BUILDER_H
#define CKPT_TEST_BUILDER_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *p;
	size_t len, cap;
};

void buf_bytes(struct buf *b, const void *data, size_t n);
void buf_varint(struct buf *b, uint64_t v);
void buf_key(struct buf *b, unsigned field, unsigned wt);
/* field with wire type 2 and the given payload */
void buf_len_field(struct buf *b, unsigned field, const void *data, size_t n);
void buf_free(struct buf *b);

/* A TensorProto with unpacked dims (ndims may be 0). */
void buf_tensor(struct buf *b, const int64_t *dims, unsigned ndims,
		const char *type, const void *content, size_t n);
/* One top-level record: 0x0A len Value{tag, tensor}. */
void buf_record(struct buf *b, const char *tag, const int64_t *dims,
		unsigned ndims, const char *type, const void *content,
		size_t n);

/* Writes b to a new temporary file and returns its path (malloc'd). */
char *buf_to_tmpfile(const struct buf *b);

#endif
