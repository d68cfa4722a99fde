/*
 * dtype.c - tensor_type names and sizes, shape formatting, name escaping.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

static const struct {
	const char *name;  /* MindSpore spelling (written) */
	const char *old;   /* older MindSpore spelling (read only) or NULL */
	const char *numpy; /* numpy name (read only) or NULL */
	size_t size;
} dtypes[CKPT_DT_COUNT] = {
	[CKPT_DT_BOOL] = {"Bool", NULL, "bool", 1},
	[CKPT_DT_INT4] = {"Int4", NULL, "int4", 1},
	[CKPT_DT_INT8] = {"Int8", NULL, "int8", 1},
	[CKPT_DT_INT16] = {"Int16", NULL, "int16", 2},
	[CKPT_DT_INT32] = {"Int32", NULL, "int32", 4},
	[CKPT_DT_INT64] = {"Int64", NULL, "int64", 8},
	[CKPT_DT_UINT8] = {"UInt8", "Uint8", "uint8", 1},
	[CKPT_DT_UINT16] = {"UInt16", "Uint16", "uint16", 2},
	[CKPT_DT_UINT32] = {"UInt32", "Uint32", "uint32", 4},
	[CKPT_DT_UINT64] = {"UInt64", "Uint64", "uint64", 8},
	[CKPT_DT_FLOAT16] = {"Float16", NULL, "float16", 2},
	[CKPT_DT_FLOAT32] = {"Float32", NULL, "float32", 4},
	[CKPT_DT_FLOAT64] = {"Float64", NULL, "float64", 8},
	[CKPT_DT_BFLOAT16] = {"BFloat16", NULL, "bfloat16", 2},
	[CKPT_DT_COMPLEX64] = {"Complex64", NULL, "complex64", 8},
	[CKPT_DT_COMPLEX128] = {"Complex128", NULL, "complex128", 16},
	[CKPT_DT_FLOAT8E4M3FN] = {"Float8E4M3FN", NULL, "float8_e4m3fn", 1},
	[CKPT_DT_FLOAT8E5M2] = {"Float8E5M2", NULL, "float8_e5m2", 1},
	[CKPT_DT_HIFLOAT8] = {"HiFloat8", NULL, NULL, 1},
	[CKPT_DT_STR] = {"str", NULL, NULL, 4},
};

const char *const ckpt_map_names[CKPT_MAP_NTENSORS] = {"keys", "values",
						       "status"};

const char *ckpt_dtype_name(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? dtypes[dt].name : "?";
}

size_t ckpt_dtype_size(ckpt_dtype dt)
{
	return (unsigned)dt < CKPT_DT_COUNT ? dtypes[dt].size : 0;
}

static bool same(const char *s, size_t len, const char *name)
{
	return name && strlen(name) == len && memcmp(s, name, len) == 0;
}

bool ckpt_dtype_parse(const char *s, size_t len, ckpt_dtype *out)
{
	for (int i = 0; i < CKPT_DT_COUNT; i++) {
		if (same(s, len, dtypes[i].name) ||
		    same(s, len, dtypes[i].old) ||
		    same(s, len, dtypes[i].numpy)) {
			*out = (ckpt_dtype)i;
			return true;
		}
	}
	return false;
}

bool ckpt_dtype_parse_stored(const char *s, size_t len, ckpt_dtype *out)
{
	for (int i = 0; i < CKPT_DT_COUNT; i++) {
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

#define PUT(...)                                                        \
	do {                                                            \
		w = snprintf(buf + (n < size ? n : size),               \
			     n < size ? size - n : 0, __VA_ARGS__);     \
		n += (size_t)w;                                         \
	} while (0)
	PUT("[");
	for (uint32_t i = 0; i < ndims; i++)
		PUT(i ? ",%" PRId64 : "%" PRId64, dims[i]);
	PUT("]");
#undef PUT
	return (int)n;
}

char *ckpt_name_escape(const char *name, size_t len)
{
	char *out, *o;
	bool dots = (len == 1 || len == 2) && name[0] == '.' &&
		    name[len - 1] == '.';

	if (len == 0)
		return strdup("%");
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '%' || c == '/' || c < 0x20 || c == 0x7f ||
		    (dots && c == '.'))
			o += sprintf(o, "%%%02X", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

bool ckpt_shape_parse(const char *s, size_t len, int64_t *dims,
		      uint32_t *ndims)
{
	size_t i = 0;
	uint32_t n = 0;
	char close = 0;

#define SKIP_SPACE() while (i < len && (s[i] == ' ' || s[i] == '\t')) i++
	SKIP_SPACE();
	if (i < len && (s[i] == '[' || s[i] == '(')) {
		close = s[i] == '[' ? ']' : ')';
		i++;
	}
	SKIP_SPACE();
	if (i < len && s[i] == close) { /* "[]" or "()" */
		i++;
		goto tail;
	}
	for (;;) {
		int64_t v = 0;
		size_t start;

		SKIP_SPACE();
		start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, s[i] - '0', &v))
				return false;
			i++;
		}
		if (i == start || n == CKPT_MAX_DIMS)
			return false;
		dims[n++] = v;
		SKIP_SPACE();
		if (i < len && s[i] == ',') {
			i++;
			SKIP_SPACE();
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
	SKIP_SPACE();
	while (i < len && (s[i] == '\n' || s[i] == '\0'))
		i++;
#undef SKIP_SPACE
	if (i != len || (!close && n == 0))
		return false;
	*ndims = n;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

ckpt_err ckpt_name_unescape(const char *fname, char **name, size_t *len)
{
	size_t n = strlen(fname), o = 0;
	char *out, *check;

	if (strcmp(fname, "%") == 0) {
		*name = strdup("");
		*len = 0;
		return *name ? CKPT_OK : CKPT_ERR_NOMEM;
	}
	out = malloc(n + 1);
	if (!out)
		return CKPT_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (fname[i] == '%' && i + 2 < n &&
		    (hi = hexval(fname[i + 1])) >= 0 &&
		    (lo = hexval(fname[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = fname[i];
		}
	}
	out[o] = '\0';
	check = ckpt_name_escape(out, o);
	if (!check || strcmp(check, fname) != 0) {
		free(check);
		free(out);
		return check ? CKPT_ERR_INVAL : CKPT_ERR_NOMEM;
	}
	free(check);
	*name = out;
	*len = o;
	return CKPT_OK;
}

bool ckpt_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p++, n, cp, min;
		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if ((size_t)(end - p) < n)
			return false;
		for (unsigned i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, too large, surrogate */
	}
	return true;
}
