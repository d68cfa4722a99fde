/*
 * format.h - what the on-disk formats share: dtype names and shapes
 * (dtype.c), shown file names (names.c), and the seam each format module
 * implements (format/FORMAT/).
 */
#ifndef CKPT_FORMAT_SEAM_H
#define CKPT_FORMAT_SEAM_H

#include "index/index.h"

/* True if the len bytes at s are valid UTF-8 (no overlong forms, no
 * surrogates), as protobuf requires of a string field. */
bool ckpt_utf8_valid(const char *s, size_t len);

/* The bytes a tensor of dtype dt and shape dims[ndims] holds: prod(dims)
 * times the element size (the element size itself for ndims == 0).  False,
 * *out untouched, if a dim is negative or the product overflows. */
bool ckpt_shape_bytes(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
		      uint64_t *out);

/* ---- the ckpt format (format/ckpt/) ------------------------------------ */

/* Scans f->fd (stream of f->stats.stream_size bytes) into f's index. */
ckpt_err ckpt_scan(struct ckpt_file *f, struct ckpt_error *err);

#endif /* CKPT_FORMAT_SEAM_H */
