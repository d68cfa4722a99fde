/*
 * crc.c - MindSpore's crc_num of a safetensors file (safetensors-format.md
 * section 1.8), exactly as its save and load compute it:
 *
 *   crc = 0
 *   for name in sorted(names):
 *       crc = crc32(name.encode('utf-8'), crc)
 *       crc = crc32(bytes(array), crc)
 *
 * sorted() orders by code point, which is the byte order of UTF-8.
 * bytes() of a 0-d integer array asks numpy's __index__ first and so
 * gives VALUE zero bytes, not the element: a 0-d integer tensor adds that
 * many zeros, and one holding a negative value makes MindSpore fail (as
 * it does here).  Every other tensor adds its bytes.
 *
 * Pure computation over what a reader hands in; no state, no locking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors/st_format.h"

#define CHUNK (1u << 20)
/* The most zeros a 0-d integer may stand for: MindSpore would allocate
 * them (bytes(v)), and more than 4 GiB fails there too. */
#define MAX_ZEROS (1ULL << 32)

/* Whether a 0-d tensor of dt takes numpy's __index__ path. */
static bool is_integer(ckpt_dtype dt)
{
	switch (dt) {
	case CKPT_DT_INT4:
	case CKPT_DT_INT8:
	case CKPT_DT_INT16:
	case CKPT_DT_INT32:
	case CKPT_DT_INT64:
	case CKPT_DT_UINT8:
	case CKPT_DT_UINT16:
	case CKPT_DT_UINT32:
	case CKPT_DT_UINT64:
		return true;
	default:
		return false;
	}
}

static bool is_signed(ckpt_dtype dt)
{
	return dt <= CKPT_DT_INT64; /* Bool is never asked */
}

/* The value of a 0-d integer of size bytes (little-endian) at b. */
static bool index_value(const uint8_t *b, uint64_t size, ckpt_dtype dt,
			uint64_t *v)
{
	uint64_t u = 0;

	for (uint64_t i = size; i-- > 0;)
		u = u << 8 | b[i];
	if (is_signed(dt) && size < 8 && (u >> (size * 8 - 1)) & 1)
		return false; /* negative */
	if (is_signed(dt) && size == 8 && (int64_t)u < 0)
		return false;
	*v = u;
	return true;
}

/* a * b modulo the CRC-32 polynomial, bit-reflected (zlib's multmodp). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ 0xEDB88320u : b >> 1;
	}
	return p;
}

/* crc of v zero bytes more, in O(log v) (a 0-d integer may stand for 4
 * GiB of them, which would take seconds): each zero byte multiplies the
 * register by x^8, so v of them by x^(8v), built from x^(2^k). */
static uint32_t crc_zeros(uint32_t crc, uint64_t v)
{
	uint32_t reg = ~crc, x2k = 1u << 23; /* x^8 (bit 31 is x^0) */

	for (; v; v >>= 1) {
		if (v & 1)
			reg = multmodp(x2k, reg);
		x2k = multmodp(x2k, x2k);
	}
	return ~reg;
}

/* What a 0-d integer tensor adds. */
static ckpt_err crc_index(uint32_t *crc, const char *name, size_t len,
			  ckpt_dtype dt, uint64_t size, st_read_fn rd,
			  void *ctx, struct ckpt_error *err)
{
	uint8_t b[8];
	uint64_t v;
	ckpt_err r = size <= 8 ? rd(ctx, 0, b, (size_t)size, err)
			       : CKPT_ERR_CORRUPT;

	if (r)
		return r;
	if (!index_value(b, size, dt, &v) || v > MAX_ZEROS)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "the 0-d %s parameter '%.*s' holds a value "
				 "MindSpore's crc_num cannot be computed with "
				 "(it hashes bytes(value): negative or over "
				 "4 GiB)",
				 ckpt_dtype_name(dt),
				 (int)(len > 200 ? 200 : len), name);
	*crc = crc_zeros(*crc, v);
	return CKPT_OK;
}

ckpt_err st_crc_tensor(uint32_t *crc, const char *name, size_t len,
		       ckpt_dtype dt, uint32_t ndims, uint64_t size,
		       st_read_fn rd, void *ctx, struct ckpt_error *err)
{
	uint8_t *buf;
	ckpt_err r = CKPT_OK;

	*crc = ckpt_crc32(*crc, name, len);
	if (ndims == 0 && is_integer(dt))
		return crc_index(crc, name, len, dt, size, rd, ctx, err);
	buf = malloc(size < CHUNK ? (size_t)size + 1 : CHUNK);
	if (!buf)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (uint64_t off = 0; off < size && !r;) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		r = rd(ctx, off, buf, n, err);
		if (!r)
			*crc = ckpt_crc32(*crc, buf, n);
		off += n;
	}
	free(buf);
	return r;
}

/* Orders positions of the parameters of file ctx by name, bytewise
 * (Python's sorted()); for qsort_r. */
static int by_name(const void *a, const void *b, void *ctx)
{
	const struct ckpt_file *f = ctx;
	const struct ckpt_param *x = &f->params[*(const size_t *)a];
	const struct ckpt_param *y = &f->params[*(const size_t *)b];
	return ckpt_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* st_read_fn over one tensor of a file: ctx is the parameter. */
struct file_tensor {
	const struct ckpt_file *f;
	const struct ckpt_tensor *t;
};

static ckpt_err read_file_tensor(void *ctx, uint64_t off, void *buf, size_t n,
				 struct ckpt_error *err)
{
	const struct file_tensor *ft = ctx;
	ssize_t got =
		ckpt_pread_full(ft->f->fd, buf, n, ft->t->extents[0].src + off);

	if (got == (ssize_t)n)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_IO, ft->t->extents[0].src + off,
			 "%s: reading: %s", ckpt_path(ft->f),
			 got < 0 ? strerror(errno) : "the file is shorter now");
}

/* The tensor of p (in f) added to *crc: over a mapping of the file
 * (ckpt_crc32_fd), a 0-d integer as st_crc_tensor says. */
static ckpt_err crc_file_param(const struct ckpt_file *f,
			       const struct ckpt_param *p, uint32_t *crc,
			       struct ckpt_error *err)
{
	struct file_tensor ft = {.f = f, .t = &p->tensor};
	uint64_t bad;

	if (p->tensor.ndims == 0 && is_integer(p->tensor.dtype))
		return st_crc_tensor(crc, p->name, p->name_len, p->tensor.dtype,
				     p->tensor.ndims, p->tensor.size,
				     read_file_tensor, &ft, err);
	*crc = ckpt_crc32(*crc, p->name, p->name_len);
	if (ckpt_crc32_fd(f->fd, p->tensor.extents[0].src, p->tensor.size, crc,
			  &bad) == 0)
		return CKPT_OK;
	if (errno == ENOMEM)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	return ckpt_fail(err, CKPT_ERR_IO, bad,
			 "%s: reading at offset %llu failed while checking "
			 "crc_num (%s): the file may have been rewritten "
			 "underneath",
			 ckpt_path(f), (unsigned long long)bad,
			 strerror(errno));
}

ckpt_err st_crc_of_file(struct ckpt_file *f, uint32_t *crc,
			struct ckpt_error *err)
{
	size_t *order = malloc((f->nparams + 1) * sizeof(*order));
	ckpt_err r = CKPT_OK;

	if (!order)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < f->nparams; i++)
		order[i] = i;
	qsort_r(order, f->nparams, sizeof(*order), by_name, f);
	*crc = 0;
	for (size_t i = 0; i < f->nparams && !r; i++) {
		const struct ckpt_param *p = &f->params[order[i]];
		r = crc_file_param(f, p, crc, err);
	}
	free(order);
	return r;
}
