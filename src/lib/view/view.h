/*
 * view.h - the private header of view/: what the two halves of the .npy
 * form of a tensor share (npy.c writes headers, npy_parse.c reads them;
 * treeview.c needs nothing of it).  Private to libckpt.
 */
#ifndef CKPT_VIEW_PRIV_H
#define CKPT_VIEW_PRIV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "ckpt_npy.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_PREFIX_V1 10	 /* magic, version, 2-byte length */
#define NPY_PREFIX_V2 12	 /* magic, version, 4-byte length (2.0, 3.0) */
#define NPY_ITEMSIZE_MAX INT_MAX /* numpy 1.x keeps an itemsize in a C int */
#define NPY_FIELD_MAX 32	 /* longer than any lower-case dtype name */

/* A shape as numpy sees it. */
struct npy_shape {
	uint32_t ndims;
	int64_t dims[CKPT_NPY_MAX_DIMS];
};

/* dt's name in lower case: the field name of its structured stand-in. */
void npy_field_name(ckpt_dtype dt, char name[NPY_FIELD_MAX]);

/* numpy's limit on an array (PyArray_NewFromDescr): the nonzero dims of
 * ns times the itemsize fit in an npy_intp.  The data bytes into
 * *bytes. */
bool npy_numpy_fits(const struct npy_shape *ns, uint64_t itemsize,
		    uint64_t *bytes);

#endif /* CKPT_VIEW_PRIV_H */
