/*
 * test_npy.c - the .npy header (ckpt_npy.h): byte for byte what numpy's
 * np.save writes for every dtype and several shapes, aligned to 64 bytes,
 * readable at any offset; the parser gives every header back and takes
 * what numpy writes and reads (other versions, spacing, key order), and
 * refuses what numpy refuses or what has no MindSpore dtype, never
 * reading past the buffer.
 *
 * The headers below were made once with /usr/bin/python3 and numpy 1.24
 * (np.save of np.zeros(shape, dtype) for the .npy dtype and shape, and
 * for the variants and refusals, each checked with np.load) and pasted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt_npy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A tensor and the header np.save writes for it; flat: F4/F6 whose last
 * dim is not whole bytes, shown 1-D (parsing gives the 1-D shape). */
struct golden {
	ckpt_dtype dt;
	uint64_t size;
	uint32_t ndims;
	int64_t dims[CKPT_NPY_MAX_DIMS];
	bool flat;
	size_t len;
	const char *header;
};

/* A header numpy loads, written otherwise than np.save does. */
struct variant {
	ckpt_dtype dt;
	uint32_t ndims;
	int64_t dims[CKPT_NPY_MAX_DIMS];
	uint64_t size;
	size_t len;
	const char *header;
};

/* A header the parser refuses, and a part of its message. */
struct refusal {
	const char *why;
	size_t len;
	const char *header;
};

/* generated: np.save(np.zeros(shape, dtype)) with numpy 1.24.2 */
static const struct golden golden[] = {
	{CKPT_DT_BOOL,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|b1', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT4,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (), }                               "
	 "                   \n"},
	{CKPT_DT_INT4,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (5,), }                             "
	 "                   \n"},
	{CKPT_DT_INT4,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (2, 3, 4, 5), }                     "
	 "                   \n"},
	{CKPT_DT_INT4,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (0, 3), }                           "
	 "                   \n"},
	{CKPT_DT_INT4,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (3, 0), }                           "
	 "                   \n"},
	{CKPT_DT_INT4,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1')], 'fortran_"
	 "order': False, 'shape': (1,), }                             "
	 "                   \n"},
	{CKPT_DT_INT8,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_INT8,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT8,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_INT8,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_INT8,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_INT8,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|i1', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT16,
	 2ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_INT16,
	 10ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT16,
	 240ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_INT16,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_INT16,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_INT16,
	 2ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i2', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT32,
	 4ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_INT32,
	 20ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT32,
	 480ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_INT32,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_INT32,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_INT32,
	 4ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT64,
	 8ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_INT64,
	 40ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_INT64,
	 960ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_INT64,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_INT64,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_INT64,
	 8ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i8', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT8,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|u1', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 2ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 10ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 240ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT16,
	 2ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u2', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 4ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 20ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 480ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT32,
	 4ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u4', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 8ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 40ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 960ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_UINT64,
	 8ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<u8', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 2ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 10ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 240ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT16,
	 2ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 4ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 20ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 480ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 4ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 8ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 40ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 960ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_FLOAT64,
	 8ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f8', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 2ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 10ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 240ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 2ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '|V2', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 8ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 40ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (5,), }                                         "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 960ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (2, 3, 4, 5), }                                 "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (0, 3), }                                       "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (3, 0), }                                       "
	 "                   \n"},
	{CKPT_DT_COMPLEX64,
	 8ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c8', 'fortran_order': Fals"
	 "e, 'shape': (1,), }                                         "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 16ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (), }                                          "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 80ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (5,), }                                        "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 1920ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (2, 3, 4, 5), }                                "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (0, 3), }                                      "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (3, 0), }                                      "
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 16ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (1,), }                                        "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (), }                       "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (5,), }                     "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (2, 3, 4, 5), }             "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (0, 3), }                   "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (3, 0), }                   "
	 "                   \n"},
	{CKPT_DT_FLOAT8E4M3FN,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e4m3fn', '|u1')], '"
	 "fortran_order': False, 'shape': (1,), }                     "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (), }                         "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (5,), }                       "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (2, 3, 4, 5), }               "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (0, 3), }                     "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (3, 0), }                     "
	 "                   \n"},
	{CKPT_DT_FLOAT8E5M2,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('float8e5m2', '|u1')], 'fo"
	 "rtran_order': False, 'shape': (1,), }                       "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (), }                           "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (5,), }                         "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (2, 3, 4, 5), }                 "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (0, 3), }                       "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (3, 0), }                       "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('hifloat8', '|u1')], 'fort"
	 "ran_order': False, 'shape': (1,), }                         "
	 "                   \n"},
	{CKPT_DT_STR,
	 4ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<U1', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_STR,
	 20ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<U5', 'fortran_order': Fals"
	 "e, 'shape': (), }                                           "
	 "                   \n"},
	{CKPT_DT_STR,
	 4000ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<U1000', 'fortran_order': F"
	 "alse, 'shape': (), }                                        "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (), }                            "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (5,), }                          "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (2, 3, 4, 5), }                  "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (0, 3), }                        "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (3, 0), }                        "
	 "                   \n"},
	{CKPT_DT_F8_E8M0,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e8m0', '|u1')], 'fortr"
	 "an_order': False, 'shape': (1,), }                          "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (), }                        "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (5,), }                      "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (2, 3, 4, 5), }              "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (0, 3), }                    "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (3, 0), }                    "
	 "                   \n"},
	{CKPT_DT_F8_E4M3FNUZ,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e4m3fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (1,), }                      "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 1ULL,
	 0,
	 {0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (), }                        "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 5ULL,
	 1,
	 {5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (5,), }                      "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 120ULL,
	 4,
	 {2, 3, 4, 5},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (2, 3, 4, 5), }              "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 0ULL,
	 2,
	 {0, 3},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (0, 3), }                    "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 0ULL,
	 2,
	 {3, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (3, 0), }                    "
	 "                   \n"},
	{CKPT_DT_F8_E5M2FNUZ,
	 1ULL,
	 1,
	 {1},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f8_e5m2fnuz', '|u1')], 'f"
	 "ortran_order': False, 'shape': (1,), }                      "
	 "                   \n"},
	{CKPT_DT_F4,
	 1ULL,
	 1,
	 {2},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (1,), }                               "
	 "                   \n"},
	{CKPT_DT_F4,
	 4ULL,
	 2,
	 {2, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (2, 2), }                             "
	 "                   \n"},
	{CKPT_DT_F4,
	 48ULL,
	 3,
	 {3, 4, 8},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (3, 4, 4), }                          "
	 "                   \n"},
	{CKPT_DT_F4,
	 0ULL,
	 2,
	 {0, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (0, 2), }                             "
	 "                   \n"},
	{CKPT_DT_F4,
	 3ULL,
	 2,
	 {2, 3},
	 true,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (3,), }                               "
	 "                   \n"},
	{CKPT_DT_F4,
	 6ULL,
	 1,
	 {12},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (6,), }                               "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 3ULL,
	 1,
	 {4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (3,), }                          "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 6ULL,
	 2,
	 {2, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (2, 3), }                        "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 72ULL,
	 3,
	 {3, 4, 8},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (3, 4, 6), }                     "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 0ULL,
	 2,
	 {0, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (0, 3), }                        "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 6ULL,
	 2,
	 {4, 2},
	 true,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (6,), }                          "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 9ULL,
	 1,
	 {12},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (9,), }                          "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 3ULL,
	 1,
	 {4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (3,), }                          "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 6ULL,
	 2,
	 {2, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (2, 3), }                        "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 72ULL,
	 3,
	 {3, 4, 8},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (3, 4, 6), }                     "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 0ULL,
	 2,
	 {0, 4},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (0, 3), }                        "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 6ULL,
	 2,
	 {4, 2},
	 true,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (6,), }                          "
	 "                   \n"},
	{CKPT_DT_F6_E3M2,
	 9ULL,
	 1,
	 {12},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e3m2', '|u1')], 'fortr"
	 "an_order': False, 'shape': (9,), }                          "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 4000000000000000000ULL,
	 1,
	 {1000000000000000000LL},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (1000000000000000000,), }                       "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 0ULL,
	 2,
	 {0, 2305843009213693951LL},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (0, 2305843009213693951), }                     "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 4ULL,
	 32,
	 {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
	 false,
	 192,
	 "\223NUMPY\001\000\266\000{'descr': '<f4', 'fortran_order': F"
	 "alse, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,"
	 " 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), }      "
	 "                          \n"},
	{CKPT_DT_FLOAT32,
	 0ULL,
	 2,
	 {123456789, 0},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (123456789, 0), }                               "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 34359738368ULL,
	 3,
	 {65536, 65536, 2},
	 false,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (65536, 65536, 2), }                            "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 18990246039772ULL,
	 15,
	 {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
	 false,
	 192,
	 "\223NUMPY\001\000\266\000{'descr': '<f4', 'fortran_order': F"
	 "alse, 'shape': (7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7)"
	 ", }                                                         "
	 "                          \n"},
};

/* generated: numpy 1.24.2 loads each of these */
static const struct variant variants[] = {
	{CKPT_DT_FLOAT32,
	 2,
	 {2, 3},
	 24ULL,
	 128,
	 "\223NUMPY\002\000t\000\000\000{'descr': '<f4', 'fortran_orde"
	 "r': False, 'shape': (2, 3), }                               "
	 "                         \n"},
	{CKPT_DT_INT64,
	 1,
	 {4},
	 32ULL,
	 128,
	 "\223NUMPY\003\000t\000\000\000{'descr': '<i8', 'fortran_orde"
	 "r': False, 'shape': (4,), }                                 "
	 "                         \n"},
	{CKPT_DT_INT4,
	 2,
	 {3, 1},
	 3ULL,
	 128,
	 "\223NUMPY\002\000t\000\000\000{'descr': [('int4', '|i1')], '"
	 "fortran_order': False, 'shape': (3, 1), }                   "
	 "                         \n"},
	{CKPT_DT_FLOAT32,
	 2,
	 {2, 3},
	 24ULL,
	 128,
	 "\223NUMPY\001\000v\000{'shape': (2, 3), 'fortran_order': Fal"
	 "se, 'descr': '<f4'}                                         "
	 "                   \n"},
	{CKPT_DT_FLOAT32,
	 2,
	 {2, 3},
	 24ULL,
	 128,
	 "\223NUMPY\001\000v\000{\"descr\": \"<f4\", \"fortran_order\""
	 ": False, \"shape\": (2,3,),}                                "
	 "                           \n"},
	{CKPT_DT_FLOAT16,
	 1,
	 {7},
	 14ULL,
	 80,
	 "\223NUMPY\001\000F\000{ 'descr' :'<f2' ,\n\011'fortran_order"
	 "':False ,'shape' : ( 7 , ) , }     \n"},
	{CKPT_DT_FLOAT16,
	 1,
	 {7},
	 14ULL,
	 66,
	 "\223NUMPY\001\0008\000{'descr': '<f2', 'fortran_order': Fals"
	 "e, 'shape': (7,)}\n"},
	{CKPT_DT_UINT16,
	 1,
	 {2},
	 4ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '=u2', # native\n 'fortran_o"
	 "rder': False, 'shape': (2,)}\n# end                         "
	 "                     \n"},
	{CKPT_DT_UINT32,
	 0,
	 {0},
	 4ULL,
	 64,
	 "\223NUMPY\001\0006\000{'descr': 'u4', 'fortran_order': False"
	 ", 'shape': ()} \n"},
	{CKPT_DT_INT8,
	 1,
	 {3},
	 3ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '>i1', 'fortran_order': Fals"
	 "e, 'shape': (3,)}                                           "
	 "                   \n"},
	{CKPT_DT_BOOL,
	 1,
	 {3},
	 3ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<b1', 'fortran_order': Fals"
	 "e, 'shape': (3L,)}                                          "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 2,
	 {2, 2},
	 8ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<V2', 'fortran_order': Fals"
	 "e, 'shape': (2, 2)}                                         "
	 "                   \n"},
	{CKPT_DT_BFLOAT16,
	 1,
	 {1},
	 2ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '>V2', 'fortran_order': Fals"
	 "e, 'shape': (1,)}                                           "
	 "                   \n"},
	{CKPT_DT_HIFLOAT8,
	 1,
	 {4},
	 4ULL,
	 128,
	 "\223NUMPY\001\000v\000{\"descr\": [(\"hifloat8\", \"u1\",),]"
	 ", \"fortran_order\": False, \"shape\": (4,)}                "
	 "                             \n"},
	{CKPT_DT_FLOAT64,
	 2,
	 {1, 0},
	 0ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'descr': '<f8', 'fort"
	 "ran_order': True, 'fortran_order': False, 'shape': (1, 0_0)}"
	 "                   \n"},
	{CKPT_DT_COMPLEX128,
	 1,
	 {10},
	 160ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<c16', 'fortran_order': Fal"
	 "se, 'shape': (1_0,)}                                        "
	 "                   \n"},
	{CKPT_DT_INT32,
	 1,
	 {5},
	 20ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (+5,)}                                          "
	 "                   \n"},
	{CKPT_DT_INT32,
	 1,
	 {0},
	 0ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': '<i4', 'fortran_order': Fals"
	 "e, 'shape': (-0,)}                                          "
	 "                   \n"},
	{CKPT_DT_F4,
	 2,
	 {2, 6},
	 6ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': (2, 3)}                               "
	 "                   \n"},
	{CKPT_DT_F6_E2M3,
	 1,
	 {8},
	 6ULL,
	 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (6,)}                            "
	 "                   \n"},
	{CKPT_DT_STR,
	 0,
	 {0},
	 12ULL,
	 64,
	 "\223NUMPY\001\0006\000{'descr': '<U3', 'fortran_order': Fals"
	 "e, 'shape': ()}\n"},
	{CKPT_DT_STR,
	 0,
	 {0},
	 8ULL,
	 64,
	 "\223NUMPY\001\0006\000{'descr': 'U2', 'fortran_order': False"
	 ", 'shape': ()} \n"},
};

/* generated: what numpy refuses, and (marked) what it loads but has no
 * MindSpore dtype */
static const struct refusal refusals[] = {
	{"does not start", 128,
	 "\223NUMPX\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3)}                                         "
	 "                   \n"},
	{"does not start", 128,
	 "PK\003\004PY\001\000v\000{'descr': '<f4', 'fortran_order': F"
	 "alse, 'shape': (2, 3)}                                      "
	 "                      \n"},
	{"format version 4.0", 128,
	 "\223NUMPY\004\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3)}                                         "
	 "                   \n"},
	{"format version 1.1", 128,
	 "\223NUMPY\001\001v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3)}                                         "
	 "                   \n"},
	{"ends after", 128,
	 "\223NUMPY\001\000\350\003{'descr': '<f4', 'fortran_order': F"
	 "alse, 'shape': (2, 3)}                                      "
	 "                      \n"},
	{"not closed", 128,
	 "\223NUMPY\001\000\024\000{'descr': '<f4', 'fortran_order': F"
	 "alse, 'shape': (2, 3)}                                      "
	 "                      \n"},
	{"expected a string", 128,
	 "\223NUMPY\001\000(\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, 3)}                                         "
	 "                   \n"},
	{"at most 10000", 20128,
	 "\223NUMPY\002\000 N\000\000{'descr': '<f4', 'fortran_order':"
	 " False, 'shape': (2, 3)}                                    "
	 "                      \n                                    "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                                            "
	 "                                            "},
	{"fortran_order is True", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': True"
	 ", 'shape': (2, 3)}                                          "
	 "                   \n"},
	{"not True or False", 64,
	 "\223NUMPY\001\0006\000{'descr': '<f4', 'fortran_order': 1, '"
	 "shape': (2, 3)}\n"},
	{"negative dim", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2, -3)}                                        "
	 "                   \n"},
	{"does not fit", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (9223372036854775808,)}                         "
	 "                   \n"},
	{"more than 2^63", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (4294967296, 4294967296)}                       "
	 "                   \n"},
	{"more than 2^63", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (0, 3074457345618258603)}                       "
	 "                   \n"},
	{"more than 32 dims", 192,
	 "\223NUMPY\001\000\266\000{'descr': '|u1', 'fortran_order': F"
	 "alse, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,"
	 " 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}     "
	 "                          \n"},
	{"object arrays", 128,
	 "\223NUMPY\001\000v\000{'descr': '|O', 'fortran_order': False"
	 ", 'shape': (2,)}                                            "
	 "                   \n"},
	{"datetime64", 128,
	 "\223NUMPY\001\000v\000{'descr': '<M8[s]', 'fortran_order': F"
	 "alse, 'shape': (2,)}                                        "
	 "                   \n"},
	{"datetime64", 128,
	 "\223NUMPY\001\000v\000{'descr': '<m8', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"big-endian", 128,
	 "\223NUMPY\001\000v\000{'descr': '>f4', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"big-endian", 64,
	 "\223NUMPY\001\0006\000{'descr': '>U3', 'fortran_order': Fals"
	 "e, 'shape': ()}\n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f16', 'fortran_order': Fal"
	 "se, 'shape': (2,)}                                          "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': '|V3', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': '|S3', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': 'float32', 'fortran_order': "
	 "False, 'shape': (2,)}                                       "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': '<x4', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': [('int5', '|i1')], 'fortran_"
	 "order': False, 'shape': (2,)}                               "
	 "                   \n"},
	{"no MindSpore dtype", 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|u1')], 'fortran_"
	 "order': False, 'shape': (2,)}                               "
	 "                   \n"},
	{"more than one field", 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1'), ('x', '|i1"
	 "')], 'fortran_order': False, 'shape': (2,)}                 "
	 "                   \n"},
	{"has a shape", 128,
	 "\223NUMPY\001\000v\000{'descr': [('int4', '|i1', (2,))], 'fo"
	 "rtran_order': False, 'shape': (2,)}                         "
	 "                   \n"},
	{"no MindSpore dtype", 64,
	 "\223NUMPY\001\0006\000{'descr': '<U0', 'fortran_order': Fals"
	 "e, 'shape': ()}\n"},
	{"one string", 128,
	 "\223NUMPY\001\000v\000{'descr': '<U3', 'fortran_order': Fals"
	 "e, 'shape': (2,)}                                           "
	 "                   \n"},
	{"whole number", 128,
	 "\223NUMPY\001\000v\000{'descr': [('f6_e2m3', '|u1')], 'fortr"
	 "an_order': False, 'shape': (4,)}                            "
	 "                   \n"},
	{"has a dim", 128,
	 "\223NUMPY\001\000v\000{'descr': [('f4', '|u1')], 'fortran_or"
	 "der': False, 'shape': ()}                                   "
	 "                   \n"},
	{"not a tuple", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (5)}                                            "
	 "                   \n"},
	{"not a tuple", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': [5]}                                            "
	 "                   \n"},
	{"leading zeros", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (07,)}                                          "
	 "                   \n"},
	{"not a decimal", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (0x10,)}                                        "
	 "                   \n"},
	{"expected ','", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2.0,)}                                         "
	 "                   \n"},
	{"expected a dim", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (1,,)}                                          "
	 "                   \n"},
	{"not a decimal", 128,
	 "\223NUMPY\003\000t\000\000\000{'descr': '<f4', 'fortran_orde"
	 "r': False, 'shape': (2L,)}                                  "
	 "                         \n"},
	{"'shape' is missing", 64,
	 "\223NUMPY\001\0006\000{'descr': '<f4', 'fortran_order': Fals"
	 "e}             \n"},
	{"unknown key 'x'", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2,), 'x': 1}                                   "
	 "                   \n"},
	{"bytes after the dict", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2,)} x                                         "
	 "                   \n"},
	{"bytes after the dict", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2,)}}                                          "
	 "                   \n"},
	{"expected ',' or '}'", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4' 'fortran_order': False"
	 ", 'shape': (2,)}                                            "
	 "                   \n"},
	{"expected a string", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4',, 'fortran_order': Fal"
	 "se, 'shape': (2,)}                                          "
	 "                   \n"},
	{"not a dict", 64,
	 "\223NUMPY\001\0006\000['descr', '<f4']                      "
	 "               \n"},
	{"escapes", 128,
	 "\223NUMPY\001\000v\000{'descr': '\\x3cf4', 'fortran_order': "
	 "False, 'shape': (2,)}                                       "
	 "                    \n"},
	{"expected ':'", 128,
	 "\223NUMPY\001\000v\000{'descr: '<f4', 'fortran_order': False"
	 ", 'shape': (2,)}                                            "
	 "                   \n"},
	{"bytes after the dict", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "e, 'shape': (2,)}\000                                       "
	 "                      \n"},
	{"not True or False", 128,
	 "\223NUMPY\001\000v\000{'descr': '<f4', 'fortran_order': Fals"
	 "ey, 'shape': (2,)}                                          "
	 "                   \n"},
};

/* A malloc'd copy of n bytes of s: ASan sees a read past it. */
static uint8_t *exact(const char *s, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

static void test_header_is_numpys(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(golden); i++) {
		const struct golden *g = &golden[i];
		char buf[CKPT_NPY_HEADER_MAX];
		struct ckpt_error err;
		size_t len = 0, done = 0;

		assert_int_equal(ckpt_npy_header_len(g->dt, g->dims, g->ndims,
						     g->size, &len, &err),
				 CKPT_OK);
		assert_int_equal(len, g->len);
		assert_int_equal(len % CKPT_NPY_ALIGN, 0);
		assert_true(len <= CKPT_NPY_HEADER_MAX);
		assert_int_equal(ckpt_npy_header_read(g->dt, g->dims, g->ndims,
						      g->size, buf, sizeof(buf),
						      0, &done, &err),
				 CKPT_OK);
		assert_int_equal(done, g->len);
		assert_memory_equal(buf, g->header, g->len);
	}
}

/* Reads at every offset, in pieces of every small size, give the same
 * bytes; at and past the end, nothing. */
static void test_header_read_at_offsets(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(golden); i += 7) {
		const struct golden *g = &golden[i];
		struct ckpt_error err;
		char buf[70];
		size_t done;

		for (size_t cap = 0; cap <= 70; cap += 7)
			for (size_t off = 0; off <= g->len + 3; off++) {
				size_t want = off >= g->len ? 0
					      : g->len - off < cap
						      ? g->len - off
						      : cap;
				assert_int_equal(ckpt_npy_header_read(
							 g->dt, g->dims,
							 g->ndims, g->size, buf,
							 cap, off, &done, &err),
						 CKPT_OK);
				assert_int_equal(done, want);
				assert_memory_equal(buf, g->header + off, done);
			}
	}
}

/* parse(header(x)) == x, with the data following the header or not. */
static void test_parse_gives_it_back(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(golden); i++) {
		const struct golden *g = &golden[i];
		struct ckpt_npy_info in;
		struct ckpt_error err;
		char buf[CKPT_NPY_HEADER_MAX + 16];
		uint8_t *p = exact(g->header, g->len);

		assert_int_equal(ckpt_npy_parse(p, g->len, &in, &err), CKPT_OK);
		free(p);
		assert_int_equal(in.header_len, g->len);
		assert_int_equal(in.version, 1);
		assert_int_equal(in.dtype, g->dt);
		assert_int_equal(in.size, g->size);
		if (g->flat) {
			assert_int_equal(in.ndims, 1);
			assert_int_equal(in.dims[0],
					 g->size * 8 / ckpt_dtype_bits(g->dt));
		} else {
			assert_int_equal(in.ndims, g->ndims);
			assert_memory_equal(in.dims, g->dims,
					    g->ndims * sizeof(*g->dims));
		}
		memcpy(buf, g->header, g->len);
		memset(buf + g->len, 'x', 16);
		assert_int_equal(ckpt_npy_parse(buf, g->len + 16, &in, &err),
				 CKPT_OK);
		assert_int_equal(in.header_len, g->len);
	}
}

/* Every dtype has a header, and its descr is the one the header holds. */
static void test_every_dtype(void **state)
{
	bool seen[CKPT_DT_COUNT] = {false};
	char descr[64];

	(void)state;
	for (size_t i = 0; i < N(golden); i++) {
		const struct golden *g = &golden[i];
		int w = ckpt_npy_descr(g->dt, g->size, descr, sizeof(descr));

		assert_true(w > 0 && (size_t)w < sizeof(descr));
		assert_memory_equal(g->header + 20, descr, (size_t)w);
		assert_memory_equal(g->header + 20 + w, ", 'fortran", 10);
		seen[g->dt] = true;
	}
	for (int dt = 0; dt < CKPT_DT_COUNT; dt++)
		assert_true(seen[dt]);
	assert_int_equal(ckpt_npy_descr(CKPT_DT_COUNT, 0, descr, 4), -1);
	/* snprintf-like: the length needed, a terminated prefix */
	assert_int_equal(ckpt_npy_descr(CKPT_DT_INT4, 1, descr, 5), 17);
	assert_string_equal(descr, "[('i");
}

static void test_parse_numpy_variants(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(variants); i++) {
		const struct variant *v = &variants[i];
		uint8_t *p = exact(v->header, v->len);
		struct ckpt_npy_info in;
		struct ckpt_error err;
		ckpt_err e = ckpt_npy_parse(p, v->len, &in, &err);

		free(p);
		if (e)
			fail_msg("variant %zu: %s", i, err.msg);
		assert_int_equal(in.header_len, v->len);
		assert_int_equal(in.dtype, v->dt);
		assert_int_equal(in.size, v->size);
		assert_int_equal(in.ndims, v->ndims);
		assert_memory_equal(in.dims, v->dims,
				    v->ndims * sizeof(*v->dims));
	}
	assert_int_equal(variants[0].header[6], 2); /* np's v2.0 writer */
	assert_int_equal(variants[1].header[6], 3);
}

static void test_parse_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(refusals); i++) {
		const struct refusal *r = &refusals[i];
		uint8_t *p = exact(r->header, r->len);
		struct ckpt_npy_info in;
		struct ckpt_error err;

		assert_int_equal(ckpt_npy_parse(p, r->len, &in, &err),
				 CKPT_ERR_INVAL);
		free(p);
		if (!strstr(err.msg, r->why))
			fail_msg("refusal %zu: '%s' does not say '%s'", i,
				 err.msg, r->why);
		assert_int_equal(ckpt_errno(&err), EINVAL);
	}
}

/* Every prefix of a valid header is refused, and read no further than
 * its end (ASan). */
static void test_truncations(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(golden); i++) {
		const struct golden *g = &golden[i];

		for (size_t n = 0; n < g->len; n++) {
			uint8_t *p = exact(g->header, n);
			struct ckpt_npy_info in;
			struct ckpt_error err;

			assert_int_equal(ckpt_npy_parse(p, n, &in, &err),
					 CKPT_ERR_INVAL);
			free(p);
		}
	}
	for (size_t i = 0; i < N(variants); i++) {
		const struct variant *v = &variants[i];

		for (size_t n = 0; n < v->len; n++) {
			uint8_t *p = exact(v->header, n);
			struct ckpt_npy_info in;

			assert_int_equal(ckpt_npy_parse(p, n, &in, NULL),
					 CKPT_ERR_INVAL);
			free(p);
		}
	}
}

/* A lying length: longer than the buffer, or shorter than the dict. */
static void test_lying_length(void **state)
{
	const struct golden *g = &golden[11];
	char buf[CKPT_NPY_HEADER_MAX];
	struct ckpt_npy_info in;
	struct ckpt_error err;

	(void)state;
	for (unsigned hl = 0; hl < 0x10000; hl += 1 + hl / 4) {
		/* the padding may be cut short, never the dict */
		bool whole = hl + 10 <= g->len &&
			     memchr(g->header + 10, '}', hl) != NULL;

		memcpy(buf, g->header, g->len);
		buf[8] = (char)(hl & 0xff);
		buf[9] = (char)(hl >> 8);
		assert_int_equal(ckpt_npy_parse(buf, g->len, &in, &err),
				 whole ? CKPT_OK : CKPT_ERR_INVAL);
		if (whole)
			assert_int_equal(in.header_len, hl + 10);
	}
}

/* What numpy could not load, or a shape that does not hold the bytes, has
 * no header. */
static void test_writer_refusals(void **state)
{
	int64_t dims[CKPT_NPY_MAX_DIMS + 1];
	struct ckpt_error err;
	size_t len;
	char buf[8];

	(void)state;
	for (size_t i = 0; i < N(dims); i++)
		dims[i] = 1;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT32, dims,
					     CKPT_NPY_MAX_DIMS + 1, 4, &len,
					     &err),
			 CKPT_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "at most 32"));
	assert_int_equal(ckpt_npy_header_read(CKPT_DT_FLOAT32, dims,
					      CKPT_NPY_MAX_DIMS + 1, 4, buf,
					      sizeof(buf), 0, &len, &err),
			 CKPT_ERR_UNSUPPORTED);
	dims[0] = 6;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT32, dims, 1, 20, &len,
					     &err),
			 CKPT_ERR_INVAL);
	assert_non_null(strstr(err.msg, "does not hold"));
	dims[0] = 3; /* 12 bits of F4 */
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_F4, dims, 1, 1, &len,
					     &err),
			 CKPT_ERR_INVAL);
	dims[0] = -1;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_INT8, dims, 1, 0, &len,
					     &err),
			 CKPT_ERR_INVAL);
	dims[0] = 0; /* numpy: nonzero dims x itemsize over 2^63 - 1 */
	dims[1] = INT64_MAX / 4 + 1;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT32, dims, 2, 0, &len,
					     &err),
			 CKPT_ERR_UNSUPPORTED);
	dims[1] = INT64_MAX / 4;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT32, dims, 2, 0, &len,
					     &err),
			 CKPT_OK);
	/* str: shape [], whole code points, a numpy itemsize */
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_STR, dims, 0, 6, &len,
					     &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_STR, dims, 0, 0, &len,
					     &err),
			 CKPT_ERR_INVAL);
	dims[0] = 2;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_STR, dims, 1, 8, &len,
					     &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_STR, dims, 0,
					     (uint64_t)INT32_MAX + 1, &len,
					     &err),
			 CKPT_ERR_UNSUPPORTED);
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_STR, dims, 0,
					     (uint64_t)INT32_MAX - 3, &len,
					     &err),
			 CKPT_OK);
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_COUNT, dims, 0, 1, &len,
					     &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_npy_header_len((ckpt_dtype)-1, dims, 0, 1, &len,
					     NULL),
			 CKPT_ERR_INVAL);
}

/* The longest header: 32 dims of many digits, the longest descr. */
static void test_longest_header(void **state)
{
	int64_t dims[CKPT_NPY_MAX_DIMS];
	struct ckpt_npy_info in;
	char buf[CKPT_NPY_HEADER_MAX];
	size_t len, done;

	(void)state;
	for (size_t i = 0; i < N(dims); i++)
		dims[i] = i ? INT64_MAX : 0;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT8E4M3FN, dims,
					     CKPT_NPY_MAX_DIMS, 0, &len, NULL),
			 CKPT_ERR_UNSUPPORTED); /* numpy refuses it */
	for (size_t i = 0; i < N(dims); i++)
		dims[i] = i ? 1111111111111111111LL / (int64_t)(i * i) : 0;
	dims[2] = 0;
	for (size_t i = 3; i < N(dims); i++)
		dims[i] = 1;
	dims[CKPT_NPY_MAX_DIMS - 1] = 1000000000000000000LL;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT8E4M3FN, dims,
					     CKPT_NPY_MAX_DIMS, 0, &len, NULL),
			 CKPT_ERR_UNSUPPORTED);
	dims[1] = 1;
	assert_int_equal(ckpt_npy_header_len(CKPT_DT_FLOAT8E4M3FN, dims,
					     CKPT_NPY_MAX_DIMS, 0, &len, NULL),
			 CKPT_OK);
	assert_true(len <= CKPT_NPY_HEADER_MAX);
	assert_int_equal(ckpt_npy_header_read(CKPT_DT_FLOAT8E4M3FN, dims,
					      CKPT_NPY_MAX_DIMS, 0, buf,
					      sizeof(buf), 0, &done, NULL),
			 CKPT_OK);
	assert_int_equal(done, len);
	assert_int_equal(ckpt_npy_parse(buf, done, &in, NULL), CKPT_OK);
	assert_int_equal(in.dtype, CKPT_DT_FLOAT8E4M3FN);
	assert_int_equal(in.ndims, CKPT_NPY_MAX_DIMS);
	assert_memory_equal(in.dims, dims, sizeof(dims));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_is_numpys),
		cmocka_unit_test(test_header_read_at_offsets),
		cmocka_unit_test(test_parse_gives_it_back),
		cmocka_unit_test(test_every_dtype),
		cmocka_unit_test(test_parse_numpy_variants),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_lying_length),
		cmocka_unit_test(test_writer_refusals),
		cmocka_unit_test(test_longest_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
