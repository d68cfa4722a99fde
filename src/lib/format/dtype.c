/*
 * dtype.c - tensor_type names and element sizes, and shapes: their text
 * form ("[6,1,5,5]") both ways and the byte count they imply.
 *
 * Owns the dtype table (MindSpore, old MindSpore and numpy spellings, the
 * safetensors names, the .npy dtypes of view/npy.c).
 * Pure functions on constant tables: no state, no locking; nothing here may
 * allocate.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

/* The HF enum order of the safetensors dtypes (safetensors-format.md
 * section 1.7): the serializer writes the highest rank first. */
enum st_rank {
	R_NONE, /* not a safetensors dtype */
	R_BOOL,
	R_F4,
	R_F6_E2M3,
	R_F6_E3M2,
	R_U8,
	R_I8,
	R_F8_E5M2,
	R_F8_E4M3,
	R_F8_E8M0,
	R_F8_E4M3FNUZ,
	R_F8_E5M2FNUZ,
	R_I16,
	R_U16,
	R_F16,
	R_BF16,
	R_I32,
	R_U32,
	R_F32,
	R_C64,
	R_F64,
	R_I64,
	R_U64,
};

static const struct {
	const char *name;  /* MindSpore spelling (written) */
	const char *old;   /* older MindSpore spelling (read only) or NULL */
	const char *numpy; /* numpy name (read only) or NULL */
	const char *st;	   /* safetensors name or NULL */
	unsigned bits;
	enum st_rank rank;
	bool ms; /* one of the 13 dtypes MindSpore's safetensors loader reads */
	const char *npy; /* .npy typestr (str: "<U", then the length) */
	bool npy_field;	 /* npy is the one field of a structured stand-in */
} dtypes[CKPT_DT_COUNT] = {
	[CKPT_DT_BOOL] = {"Bool", NULL, "bool", "BOOL", 8, R_BOOL, true, "|b1",
			  false},
	[CKPT_DT_INT4] = {"Int4", NULL, "int4", NULL, 8, R_I8, true, "|i1",
			  true},
	[CKPT_DT_INT8] = {"Int8", NULL, "int8", "I8", 8, R_I8, true, "|i1",
			  false},
	[CKPT_DT_INT16] = {"Int16", NULL, "int16", "I16", 16, R_I16, true,
			   "<i2", false},
	[CKPT_DT_INT32] = {"Int32", NULL, "int32", "I32", 32, R_I32, true,
			   "<i4", false},
	[CKPT_DT_INT64] = {"Int64", NULL, "int64", "I64", 64, R_I64, true,
			   "<i8", false},
	[CKPT_DT_UINT8] = {"UInt8", "Uint8", "uint8", "U8", 8, R_U8, true,
			   "|u1", false},
	[CKPT_DT_UINT16] = {"UInt16", "Uint16", "uint16", "U16", 16, R_U16,
			    true, "<u2", false},
	[CKPT_DT_UINT32] = {"UInt32", "Uint32", "uint32", "U32", 32, R_U32,
			    true, "<u4", false},
	[CKPT_DT_UINT64] = {"UInt64", "Uint64", "uint64", "U64", 64, R_U64,
			    true, "<u8", false},
	[CKPT_DT_FLOAT16] = {"Float16", NULL, "float16", "F16", 16, R_F16, true,
			     "<f2", false},
	[CKPT_DT_FLOAT32] = {"Float32", NULL, "float32", "F32", 32, R_F32, true,
			     "<f4", false},
	[CKPT_DT_FLOAT64] = {"Float64", NULL, "float64", "F64", 64, R_F64, true,
			     "<f8", false},
	[CKPT_DT_BFLOAT16] = {"BFloat16", NULL, "bfloat16", "BF16", 16, R_BF16,
			      true, "|V2", false},
	[CKPT_DT_COMPLEX64] = {"Complex64", NULL, "complex64", "C64", 64, R_C64,
			       false, "<c8", false},
	[CKPT_DT_COMPLEX128] = {"Complex128", NULL, "complex128", NULL, 128,
				R_NONE, false, "<c16", false},
	[CKPT_DT_FLOAT8E4M3FN] = {"Float8E4M3FN", NULL, "float8_e4m3fn",
				  "F8_E4M3", 8, R_F8_E4M3, false, "|u1", true},
	[CKPT_DT_FLOAT8E5M2] = {"Float8E5M2", NULL, "float8_e5m2", "F8_E5M2", 8,
				R_F8_E5M2, false, "|u1", true},
	[CKPT_DT_HIFLOAT8] = {"HiFloat8", NULL, NULL, NULL, 8, R_NONE, false,
			      "|u1", true},
	[CKPT_DT_STR] = {"str", NULL, NULL, NULL, 32, R_NONE, false, "<U",
			 false},
	[CKPT_DT_F8_E8M0] = {"F8_E8M0", NULL, "float8_e8m0fnu", "F8_E8M0", 8,
			     R_F8_E8M0, false, "|u1", true},
	[CKPT_DT_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", NULL, "float8_e4m3fnuz",
				 "F8_E4M3FNUZ", 8, R_F8_E4M3FNUZ, false, "|u1",
				 true},
	[CKPT_DT_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", NULL, "float8_e5m2fnuz",
				 "F8_E5M2FNUZ", 8, R_F8_E5M2FNUZ, false, "|u1",
				 true},
	[CKPT_DT_F4] = {"F4", NULL, NULL, "F4", 4, R_F4, false, "|u1", true},
	[CKPT_DT_F6_E2M3] = {"F6_E2M3", NULL, NULL, "F6_E2M3", 6, R_F6_E2M3,
			     false, "|u1", true},
	[CKPT_DT_F6_E3M2] = {"F6_E3M2", NULL, NULL, "F6_E3M2", 6, R_F6_E3M2,
			     false, "|u1", true},
};

static bool same(const char *s, size_t len, const char *name)
{
	return name && strlen(name) == len && memcmp(s, name, len) == 0;
}

const char *const ckpt_map_names[CKPT_MAP_NTENSORS] = {"keys", "values",
						       "status"};

const char *ckpt_dtype_name(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? dtypes[dt].name : "?";
}

size_t ckpt_dtype_size(ckpt_dtype dt)
{
	return ckpt_dtype_bits(dt) % 8 ? 0 : ckpt_dtype_bits(dt) / 8;
}

unsigned ckpt_dtype_bits(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? dtypes[dt].bits : 0;
}

bool ckpt_dtype_elems(ckpt_dtype dt, uint64_t bytes, uint64_t *n)
{
	unsigned bits = ckpt_dtype_bits(dt);

	if (!bits || bytes > UINT64_MAX / 8 || bytes * 8 % bits)
		return false;
	*n = bytes * 8 / bits;
	return true;
}

const char *ckpt_dtype_st_name(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? dtypes[dt].st : NULL;
}

bool ckpt_dtype_st_parse(const char *s, size_t len, ckpt_dtype *out)
{
	for (int i = 0; i < CKPT_DT_COUNT; i++) {
		if (i != CKPT_DT_INT4 && same(s, len, dtypes[i].st)) {
			*out = (ckpt_dtype)i;
			return true;
		}
	}
	return false;
}

int ckpt_dtype_st_rank(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? (int)dtypes[dt].rank : 0;
}

bool ckpt_dtype_ms_loads(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT && dtypes[dt].ms;
}

const char *ckpt_dtype_npy(ckpt_dtype dt, bool *field)
{
	if ((unsigned)dt >= CKPT_DT_COUNT)
		return NULL;
	*field = dtypes[dt].npy_field;
	return dtypes[dt].npy;
}

bool ckpt_dtype_parse(const char *s, size_t len, ckpt_dtype *out)
{
	for (int i = 0; i < CKPT_DT_COUNT; i++) {
		if (same(s, len, dtypes[i].name) ||
		    same(s, len, dtypes[i].old) ||
		    same(s, len, dtypes[i].numpy) ||
		    same(s, len, dtypes[i].st)) {
			*out = (ckpt_dtype)i;
			return true;
		}
	}
	return false;
}

bool ckpt_dtype_parse_stored(const char *s, size_t len, ckpt_dtype *out)
{
	for (int i = 0; i <= CKPT_DT_STR; i++) { /* MindSpore's tensor_types */
		if (same(s, len, dtypes[i].name) ||
		    same(s, len, dtypes[i].old)) {
			*out = (ckpt_dtype)i;
			return true;
		}
	}
	return false;
}

int ckpt_shape_format(const int64_t *dims, uint32_t ndims, char *buf,
		      size_t size)
{
	size_t n = 0;
	int w;

#define PUT(...)                                                    \
	do {                                                        \
		w = snprintf(buf + (n < size ? n : size),           \
			     n < size ? size - n : 0, __VA_ARGS__); \
		n += (size_t)w;                                     \
	} while (0)
	PUT("[");
	for (uint32_t i = 0; i < ndims; i++)
		PUT(i ? ",%" PRId64 : "%" PRId64, dims[i]);
	PUT("]");
#undef PUT
	return (int)n;
}

bool ckpt_shape_bytes(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
		      uint64_t *out)
{
	unsigned bits = ckpt_dtype_bits(dt);
	bool sub = bits % 8 != 0; /* F4, F6: count bits, then bytes */
	uint64_t n = sub ? bits : bits / 8;

	for (uint32_t i = 0; i < ndims; i++) {
		if (dims[i] < 0 ||
		    __builtin_mul_overflow(n, (uint64_t)dims[i], &n))
			return false;
	}
	if (sub && n % 8) /* the elements must fill whole bytes */
		return false;
	*out = sub ? n / 8 : n;
	return true;
}

/* The position of the first byte at or after i in s that is not a blank. */
static size_t skip_space(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/* Reads one dim (digits) at *i into *v; false if there is none or it
 * overflows. */
static bool parse_dim(const char *s, size_t len, size_t *i, int64_t *v)
{
	size_t start = *i;

	*v = 0;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		if (__builtin_mul_overflow(*v, 10, v) ||
		    __builtin_add_overflow(*v, s[*i] - '0', v))
			return false;
		(*i)++;
	}
	return *i != start;
}

bool ckpt_shape_parse(const char *s, size_t len, int64_t *dims, uint32_t *ndims)
{
	size_t i = 0;
	uint32_t n = 0;
	char close = 0;

	i = skip_space(s, len, i);
	if (i < len && (s[i] == '[' || s[i] == '(')) {
		close = s[i] == '[' ? ']' : ')';
		i++;
	}
	i = skip_space(s, len, i);
	if (i < len && s[i] == close) { /* "[]" or "()" */
		i++;
		goto tail;
	}
	for (;;) {
		int64_t v;

		i = skip_space(s, len, i);
		if (!parse_dim(s, len, &i, &v) || n == CKPT_MAX_DIMS)
			return false;
		dims[n++] = v;
		i = skip_space(s, len, i);
		if (i < len && s[i] == ',') {
			i++;
			i = skip_space(s, len, i);
			if (close && i < len && s[i] == close && n == 1) {
				i++; /* "(5,)" */
				goto tail;
			}
			continue;
		}
		break;
	}
	if (close) {
		if (i >= len || s[i] != close)
			return false;
		i++;
	}
tail:
	i = skip_space(s, len, i);
	while (i < len && (s[i] == '\n' || s[i] == '\0'))
		i++;
	if (i != len || (!close && n == 0))
		return false;
	*ndims = n;
	return true;
}
