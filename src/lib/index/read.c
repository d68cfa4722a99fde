/*
 * read.c - reading tensor bytes from the source by offset, and finding the
 * extent that holds a given byte (for the tree and the encrypted writer
 * too).
 *
 * Reads only: nothing here changes the index, so any number of threads may
 * read one open file at a time (pread, no shared buffer).  A read must
 * never go outside the extents of the tensor.
 */
#include <errno.h>
#include <string.h>

#include "index/index.h"

uint32_t ckpt_tensor_extent_at(const struct ckpt_tensor *t, uint64_t pos)
{
	return (uint32_t)ckpt_extent_at(t->extents, t->nextents, pos);
}

/* Reads stored bytes [off, off+size) of t; size must fit in t->stored. */
static ckpt_err read_stored(const struct ckpt_file *f,
			    const struct ckpt_tensor *t, uint8_t *buf,
			    size_t size, uint64_t off, struct ckpt_error *err)
{
	uint32_t i = ckpt_tensor_extent_at(t, off);

	while (size) {
		const struct ckpt_extent *x = &t->extents[i++];
		uint64_t in = off - x->pos;
		size_t n = x->len - in < size ? (size_t)(x->len - in) : size;
		ssize_t r = ckpt_pread_full(f->fd, buf, n, x->src + in);
		if (r != (ssize_t)n)
			return ckpt_fail(
				err, CKPT_ERR_IO, x->src + in,
				"%s: read at offset %llu failed: %s", f->path,
				(unsigned long long)(x->src + in),
				r < 0 ? strerror(errno) : "file shrank");
		buf += n;
		off += n;
		size -= n;
	}
	return CKPT_OK;
}

/* bfloat16 stored as float32: shown byte k is stored byte 4*(k/2)+2+k%2. */
static ckpt_err read_bf16(const struct ckpt_file *f,
			  const struct ckpt_tensor *t, uint8_t *buf,
			  size_t size, uint64_t off, struct ckpt_error *err)
{
	uint8_t tmp[4096];

	while (size) {
		uint64_t first = off / 2;
		size_t nel = (size + off % 2 + 1) / 2;
		if (nel > sizeof(tmp) / 4)
			nel = sizeof(tmp) / 4;
		ckpt_err e = read_stored(f, t, tmp, nel * 4, first * 4, err);
		if (e)
			return e;
		for (size_t k = off % 2; k < nel * 2 && size; k++, size--) {
			*buf++ = tmp[(k / 2) * 4 + 2 + k % 2];
			off++;
		}
	}
	return CKPT_OK;
}

ckpt_err ckpt_tensor_read(const struct ckpt_file *f,
			  const struct ckpt_tensor *t, void *buf, size_t size,
			  uint64_t off, size_t *done, struct ckpt_error *err)
{
	ckpt_err e;

	*done = 0;
	if (off >= t->size)
		return CKPT_OK;
	if (size > t->size - off)
		size = (size_t)(t->size - off);
	if (t->bf16_from_f32)
		e = read_bf16(f, t, buf, size, off, err);
	else
		e = read_stored(f, t, buf, size, off, err);
	if (!e)
		*done = size;
	return e;
}
