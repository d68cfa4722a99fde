/*
 * pieces.c - where the bytes of an entry are: the read path of the tree.
 *
 * An entry's bytes are in its staging file once it was changed, else in
 * the extents of the checkpoint it came from (or, for a bfloat16 stored as
 * float32, in a buffer converted on the fly).  A read, a staging copy and
 * a commit all ask here for the pieces of a byte range and never look at
 * extents themselves.  Called with the tree locked (either way): the
 * descriptors in a piece stay valid while the lock is held.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "tree/tree.h"

#define WALK_WINDOW (1u << 30) /* pieces asked for at a time */

static ckpt_err no_memory(struct ckpt_error *err)
{
	return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
}

/* The one piece of a converted bfloat16 range, in a buffer of its own. */
static ckpt_err converted_piece(const struct ckpt_file *src,
				const struct ckpt_tensor *mt, uint64_t off,
				size_t size, struct ckpt_piece **pieces,
				void **mem, struct ckpt_error *err)
{
	struct ckpt_piece *pc = malloc(sizeof(*pc));
	void *buf = malloc(size);
	size_t got = 0;
	ckpt_err r;

	if (!buf || !pc) {
		free(buf);
		free(pc);
		return no_memory(err);
	}
	r = ckpt_tensor_read(src, mt, buf, size, off, &got, err);
	if (!r && got != size)
		r = ckpt_fail(err, CKPT_ERR_IO, off,
			      "%s: tensor shorter "
			      "than its index says",
			      ckpt_path(src));
	if (r) {
		free(buf);
		free(pc);
		return r;
	}
	*pc = (struct ckpt_piece){.fd = -1, .mem = buf, .len = size};
	*mem = buf;
	*pieces = pc;
	return CKPT_OK;
}

/* The pieces of [off, off+size) of staged entry e: one per stored slice
 * it crosses (ckpt_stage_pos), at most one per slice. */
static ckpt_err staged_pieces(const struct entry *e, uint64_t off, size_t size,
			      struct ckpt_piece **pieces, uint32_t *count,
			      struct ckpt_error *err)
{
	uint32_t most = e->stage_shift ? e->orig->tensor.nextents : 1, n = 0;
	struct ckpt_piece *pc = calloc(most, sizeof(*pc));

	if (!pc)
		return no_memory(err);
	while (size) {
		uint64_t run, pos = ckpt_stage_pos(e, off, &run);
		size_t len = run < size ? (size_t)run : size;
		pc[n++] = (struct ckpt_piece){
			.fd = e->stage_fd, .pos = pos, .len = len};
		off += len;
		size -= len;
	}
	*pieces = pc;
	*count = n;
	return CKPT_OK;
}

ckpt_err ckpt_entry_pieces(const struct entry *e, const struct ckpt_file *src,
			   const struct ckpt_tensor *mt, uint64_t off,
			   size_t size, struct ckpt_piece **pieces,
			   uint32_t *count, void **mem, struct ckpt_error *err)
{
	struct ckpt_piece *pc;
	uint64_t total = e ? e->size : mt ? mt->size : 0;
	uint32_t first, n = 0;

	*pieces = NULL;
	*mem = NULL;
	*count = 0;
	if (off >= total || size == 0)
		return CKPT_OK;
	if (size > total - off)
		size = (size_t)(total - off);
	if (e && e->stage_fd >= 0)
		return staged_pieces(e, off, size, pieces, count, err);
	if (!mt || !src)
		return CKPT_OK; /* a new, never written entry */
	if (mt->bf16_from_f32) {
		ckpt_err r =
			converted_piece(src, mt, off, size, pieces, mem, err);
		*count = r ? 0 : 1;
		return r;
	}
	first = ckpt_tensor_extent_at(mt, off);
	for (uint32_t i = first;
	     i < mt->nextents && mt->extents[i].pos < off + size; i++)
		n++;
	pc = calloc(n, sizeof(*pc));
	if (!pc)
		return no_memory(err);
	for (uint32_t i = 0; i < n; i++) {
		const struct ckpt_extent *x = &mt->extents[first + i];
		uint64_t in = off - x->pos, len = x->len - in;
		if (len > size)
			len = size;
		pc[i] = (struct ckpt_piece){.fd = ckpt_fd(src),
					    .pos = x->src + in,
					    .len = (size_t)len};
		off += len;
		size -= (size_t)len;
	}
	*pieces = pc;
	*count = n;
	return CKPT_OK;
}

ckpt_err ckpt_pieces_copy(const struct ckpt_piece *p, uint32_t n, void *buf,
			  size_t *done, struct ckpt_error *err)
{
	uint8_t *b = buf;

	for (uint32_t i = 0; i < n; i++) {
		ssize_t r = (ssize_t)p[i].len;
		if (p[i].fd < 0)
			memcpy(b, p[i].mem, p[i].len);
		else
			r = ckpt_pread_full(p[i].fd, b, p[i].len, p[i].pos);
		if (r >= 0 && r != (ssize_t)p[i].len)
			errno = EIO; /* the file is shorter than its index */
		if (r != (ssize_t)p[i].len)
			return ckpt_fail(err, CKPT_ERR_IO, p[i].pos,
					 "reading %zu bytes at offset %llu: "
					 "%s",
					 p[i].len, (unsigned long long)p[i].pos,
					 strerror(errno));
		b += p[i].len;
	}
	*done = (size_t)(b - (uint8_t *)buf);
	return CKPT_OK;
}

/* Calls fn for the n pieces that start at entry offset at. */
static ckpt_err walk_pieces(const struct ckpt_piece *pc, uint32_t n,
			    uint64_t *at, ckpt_piece_fn fn, void *ctx,
			    struct ckpt_error *err)
{
	for (uint32_t k = 0; k < n; k++) {
		ckpt_err r = fn(ctx, &pc[k], *at, err);
		if (r)
			return r;
		*at += pc[k].len;
	}
	return CKPT_OK;
}

ckpt_err ckpt_entry_walk(const struct entry *e, uint64_t off, uint64_t len,
			 ckpt_piece_fn fn, void *ctx, struct ckpt_error *err)
{
	const struct ckpt_tensor *mt = e->orig ? &e->orig->tensor : NULL;

	while (len) {
		size_t want = len > WALK_WINDOW ? WALK_WINDOW : (size_t)len;
		struct ckpt_piece *pc;
		uint32_t n;
		void *mem;
		uint64_t at = off;
		ckpt_err r = ckpt_entry_pieces(e, e->src, mt, off, want, &pc,
					       &n, &mem, err);

		if (!r && n == 0) {
			errno = EIO;
			r = ckpt_fail(err, CKPT_ERR_IO, off,
				      "'%s' holds fewer "
				      "bytes than its size",
				      e->fname);
		}
		if (!r)
			r = walk_pieces(pc, n, &at, fn, ctx, err);
		if (mem) /* converted bfloat16 (one piece): maybe plaintext
			  * of an encrypted tree */
			OPENSSL_cleanse(mem, pc[0].len);
		free(pc);
		free(mem);
		if (r)
			return r;
		len -= at - off;
		off = at;
	}
	return CKPT_OK;
}
