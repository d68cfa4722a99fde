/*
 * ckpt_npy.h - a tensor as a NumPy .npy file: the header numpy's np.save
 * writes before the raw bytes, and the parser of such headers.
 *
 * A .npy file is a header followed by the C-order little-endian bytes of
 * the array, which are exactly a tensor's shown bytes: the view adds only
 * the header.  The header written is byte for byte what np.save (numpy
 * >= 1.24) writes for the equivalent array: format version 1.0, the dict
 * literal {'descr': ..., 'fortran_order': False, 'shape': (...), },
 * padded with spaces and a final '\n' to a multiple of CKPT_NPY_ALIGN
 * bytes, so the data starts 64-byte aligned (np.load with mmap_mode
 * works).  Dtypes numpy lacks get a stand-in dtype that np.load and
 * np.save keep and that parses back to the MindSpore dtype (docs/npy.md
 * has the table):
 *   BFloat16                 '|V2'
 *   Int4 (one per byte)      [('int4', '|i1')]
 *   8-bit floats             [('<lowercase name>', '|u1')], e.g.
 *                            [('float8e4m3fn', '|u1')], [('f8_e8m0', '|u1')]
 *   F4, F6_E2M3, F6_E3M2     [('f4', '|u1')] ... : the packed bytes; the
 *                            last dim counts bytes (dims[last] x bits / 8)
 *                            when that is whole, else the shape is the
 *                            1-D byte count (then parsing gives the 1-D
 *                            shape back)
 *   str (UTF-32LE)           '<UN', shape (): a numpy string of N code
 *                            points
 *
 * Pure functions: no allocation, no state, safe from any thread.
 */
#ifndef CKPT_NPY_H
#define CKPT_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"

/* Data starts at a multiple of this in what the writer produces (numpy's
 * ARRAY_ALIGN). */
#define CKPT_NPY_ALIGN 64

/* Most dims a numpy array may have (NPY_MAXDIMS of numpy 1.x); tensors
 * with more have no .npy form. */
#define CKPT_NPY_MAX_DIMS 32

/* The longest header the writer produces (32 dims of 19 digits, the
 * longest descr, the padding), for buffers on the stack. */
#define CKPT_NPY_HEADER_MAX 1024

/* The most bytes of dict text the parser reads (numpy refuses more
 * unless the file is trusted: allow_pickle), so a header it takes is at
 * most 12 + CKPT_NPY_DICT_MAX bytes long. */
#define CKPT_NPY_DICT_MAX 10000

/* The length of the .npy header of a tensor of dtype dt, shape
 * dims[ndims] (MindSpore's: [] for a scalar and for str) and size data
 * bytes, into *len (a multiple of CKPT_NPY_ALIGN, at most
 * CKPT_NPY_HEADER_MAX).  Cheap (no allocation, no output): for stat.  Fails with CKPT_ERR_INVAL when size is not what the shape holds
 * (str: not a positive multiple of 4) or the dtype is out of range, and
 * with CKPT_ERR_UNSUPPORTED when numpy could not load the array (more
 * than CKPT_NPY_MAX_DIMS dims, more than INT64_MAX bytes). */
ckpt_err ckpt_npy_header_len(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			     uint64_t size, size_t *len,
			     struct ckpt_error *err);

/* Copies bytes [off, off + cap) of that header (clipped to its length)
 * into buf and their count into *done (0 at or past the end), as a read
 * of the .npy file at offset off would return them.  Fails as
 * ckpt_npy_header_len. */
ckpt_err ckpt_npy_header_read(ckpt_dtype dt, const int64_t *dims,
			      uint32_t ndims, uint64_t size, void *buf,
			      size_t cap, uint64_t off, size_t *done,
			      struct ckpt_error *err);

/* What a parsed header says. */
struct ckpt_npy_info {
	size_t header_len; /* bytes before the data */
	unsigned version;  /* format major version: 1, 2 or 3 */
	ckpt_dtype dtype;
	uint32_t ndims; /* MindSpore's shape: for str 0, for F4 and F6 the
			 * last dim in elements again */
	int64_t dims[CKPT_NPY_MAX_DIMS];
	uint64_t size; /* data bytes the header announces */
};

/* Parses the .npy header at the start of buf (len bytes; the data may
 * follow): versions 1.0, 2.0 and 3.0, the dict literal as numpy's reader
 * takes it (keys in any order, '' or "" quotes, trailing commas, any
 * whitespace and comments between tokens, a repeated key's last value).
 * Never reads past buf + len.  Fails with CKPT_ERR_INVAL and a message
 * saying why for anything numpy refuses and for what has no MindSpore
 * dtype: a bad magic or version, a header longer than buf, a dict over
 * CKPT_NPY_DICT_MAX bytes, a malformed dict, missing or extra keys,
 * fortran_order True, negative or overflowing dims, more than
 * CKPT_NPY_MAX_DIMS, data over INT64_MAX bytes, object, datetime,
 * timedelta, byte-string and big-endian multi-byte dtypes, an unknown
 * descr, a str stand-in of shape other than () or of no code points, a
 * packed-float shape that is not a whole number of elements. */
ckpt_err ckpt_npy_parse(const void *buf, size_t len, struct ckpt_npy_info *out,
			struct ckpt_error *err);

/* Writes the descr of dt as the header spells it (Python's repr: "'<f4'",
 * "[('int4', '|i1')]"; str, of size bytes: "'<U5'") into buf, like
 * snprintf: returns the length the whole text needs, or -1 for a dtype
 * out of range. */
int ckpt_npy_descr(ckpt_dtype dt, uint64_t size, char *buf, size_t cap);

#endif /* CKPT_NPY_H */
