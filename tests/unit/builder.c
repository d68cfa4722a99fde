/*
 * builder.c - see builder.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder.h"

void buf_bytes(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

void buf_varint(struct buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;

	do {
		t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	buf_bytes(b, t, n);
}

void buf_key(struct buf *b, unsigned field, unsigned wt)
{
	buf_varint(b, (uint64_t)field << 3 | wt);
}

void buf_len_field(struct buf *b, unsigned field, const void *data, size_t n)
{
	buf_key(b, field, 2);
	buf_varint(b, n);
	buf_bytes(b, data, n);
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void buf_tensor(struct buf *b, const int64_t *dims, unsigned ndims,
		const char *type, const void *content, size_t n)
{
	for (unsigned i = 0; i < ndims; i++) {
		buf_key(b, 1, 0);
		buf_varint(b, (uint64_t)dims[i]);
	}
	buf_len_field(b, 2, type, strlen(type));
	buf_len_field(b, 3, content, n);
}

void buf_record(struct buf *b, const char *tag, const int64_t *dims,
		unsigned ndims, const char *type, const void *content,
		size_t n)
{
	struct buf t = {0}, v = {0};

	buf_tensor(&t, dims, ndims, type, content, n);
	buf_len_field(&v, 1, tag, strlen(tag));
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(b, 1, v.p, v.len);
	buf_free(&t);
	buf_free(&v);
}

char *buf_to_tmpfile(const struct buf *b)
{
	char *path = strdup("/tmp/ckpt-unit-XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, b->p, b->len) != (ssize_t)b->len)
		abort();
	close(fd);
	return path;
}
