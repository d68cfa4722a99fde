/*
 * test_dtype.c - dtype names and sizes, shape formatting, name escaping,
 * error strings.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt.h"

/* The table of format spec section 3, written out independently. */
static const struct {
	ckpt_dtype dt;
	const char *name;
	const char *numpy; /* NULL: no numpy alias */
	size_t size;
} table[] = {
	{CKPT_DT_BOOL, "Bool", "bool", 1},
	{CKPT_DT_INT4, "Int4", NULL, 1},
	{CKPT_DT_INT8, "Int8", "int8", 1},
	{CKPT_DT_INT16, "Int16", "int16", 2},
	{CKPT_DT_INT32, "Int32", "int32", 4},
	{CKPT_DT_INT64, "Int64", "int64", 8},
	{CKPT_DT_UINT8, "UInt8", "uint8", 1},
	{CKPT_DT_UINT16, "UInt16", "uint16", 2},
	{CKPT_DT_UINT32, "UInt32", "uint32", 4},
	{CKPT_DT_UINT64, "UInt64", "uint64", 8},
	{CKPT_DT_FLOAT16, "Float16", "float16", 2},
	{CKPT_DT_FLOAT32, "Float32", "float32", 4},
	{CKPT_DT_FLOAT64, "Float64", "float64", 8},
	{CKPT_DT_BFLOAT16, "BFloat16", "bfloat16", 2},
	{CKPT_DT_COMPLEX64, "Complex64", "complex64", 8},
	{CKPT_DT_COMPLEX128, "Complex128", "complex128", 16},
	{CKPT_DT_FLOAT8E4M3FN, "Float8E4M3FN", NULL, 1},
	{CKPT_DT_FLOAT8E5M2, "Float8E5M2", NULL, 1},
	{CKPT_DT_HIFLOAT8, "HiFloat8", NULL, 1},
	{CKPT_DT_STR, "str", NULL, 4},
	/* safetensors dtypes without a MindSpore name (never a tensor_type) */
	{CKPT_DT_F8_E8M0, "F8_E8M0", "float8_e8m0fnu", 1},
	{CKPT_DT_F8_E4M3FNUZ, "F8_E4M3FNUZ", "float8_e4m3fnuz", 1},
	{CKPT_DT_F8_E5M2FNUZ, "F8_E5M2FNUZ", "float8_e5m2fnuz", 1},
	{CKPT_DT_F4, "F4", NULL, 0},
	{CKPT_DT_F6_E2M3, "F6_E2M3", NULL, 0},
	{CKPT_DT_F6_E3M2, "F6_E3M2", NULL, 0},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool parse(const char *s, ckpt_dtype *dt)
{
	return ckpt_dtype_parse(s, strlen(s), dt);
}

static void test_table_complete(void **state)
{
	(void)state;
	assert_int_equal(N(table), CKPT_DT_COUNT);
	for (size_t i = 0; i < N(table); i++)
		assert_int_equal(table[i].dt, i);
}

static void test_every_name_parses(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(table); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_true(parse(table[i].name, &dt));
		assert_int_equal(dt, table[i].dt);
		assert_string_equal(ckpt_dtype_name(dt), table[i].name);
		assert_int_equal(ckpt_dtype_size(dt), table[i].size);
	}
}

/* The safetensors names parse too (setfattr user.dtype=F32), and the
 * sub-byte dtypes count bits. */
static void test_safetensors_names(void **state)
{
	static const struct {
		const char *s;
		ckpt_dtype dt;
		unsigned bits;
	} st[] = {
		{"BOOL", CKPT_DT_BOOL, 8},
		{"I8", CKPT_DT_INT8, 8},
		{"U64", CKPT_DT_UINT64, 64},
		{"BF16", CKPT_DT_BFLOAT16, 16},
		{"F8_E4M3", CKPT_DT_FLOAT8E4M3FN, 8},
		{"F8_E5M2", CKPT_DT_FLOAT8E5M2, 8},
		{"C64", CKPT_DT_COMPLEX64, 64},
		{"F4", CKPT_DT_F4, 4},
		{"F6_E3M2", CKPT_DT_F6_E3M2, 6},
	};
	uint64_t n = 7;
	(void)state;
	for (size_t i = 0; i < N(st); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_true(parse(st[i].s, &dt));
		assert_int_equal(dt, st[i].dt);
		assert_int_equal(ckpt_dtype_bits(dt), st[i].bits);
	}
	assert_true(ckpt_dtype_elems(CKPT_DT_F4, 3, &n)); /* 2 per byte */
	assert_int_equal(n, 6);
	assert_true(ckpt_dtype_elems(CKPT_DT_F6_E2M3, 3, &n)); /* 24 bits */
	assert_int_equal(n, 4);
	n = 7;
	assert_false(ckpt_dtype_elems(CKPT_DT_F6_E2M3, 2, &n));
	assert_false(ckpt_dtype_elems(CKPT_DT_FLOAT32, 6, &n));
	assert_int_equal(n, 7);
	assert_true(ckpt_dtype_elems(CKPT_DT_FLOAT32, 8, &n));
	assert_int_equal(n, 2);
}

static void test_old_unsigned_spelling(void **state)
{
	static const struct {
		const char *s;
		ckpt_dtype dt;
		const char *shown;
	} old[] = {
		{"Uint8", CKPT_DT_UINT8, "UInt8"},
		{"Uint16", CKPT_DT_UINT16, "UInt16"},
		{"Uint32", CKPT_DT_UINT32, "UInt32"},
		{"Uint64", CKPT_DT_UINT64, "UInt64"},
	};
	(void)state;
	for (size_t i = 0; i < N(old); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_true(parse(old[i].s, &dt));
		assert_int_equal(dt, old[i].dt);
		assert_string_equal(ckpt_dtype_name(dt), old[i].shown);
	}
}

static void test_numpy_aliases(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(table); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		if (!table[i].numpy)
			continue;
		assert_true(parse(table[i].numpy, &dt));
		assert_int_equal(dt, table[i].dt);
	}
}

/* What a plain tensor may carry: MindSpore's names and the old "Uint*",
 * not numpy's. */
static void test_parse_stored(void **state)
{
	static const char *const old[] = {"Uint8", "Uint16", "Uint32",
					  "Uint64"};
	static const char *const numpy[] = {
		"bool",	   "int8",    "int16",	  "int32",     "int64",
		"uint8",   "uint16",  "uint32",	  "uint64",    "float16",
		"float32", "float64", "bfloat16", "complex64", "complex128",
	};
	(void)state;

	for (size_t i = 0; i < N(table); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		bool ms = table[i].dt <= CKPT_DT_STR;
		assert_int_equal(ckpt_dtype_parse_stored(table[i].name,
							 strlen(table[i].name),
							 &dt),
				 ms);
		assert_int_equal(dt, ms ? table[i].dt : CKPT_DT_COUNT);
	}
	for (size_t i = 0; i < N(old); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_true(
			ckpt_dtype_parse_stored(old[i], strlen(old[i]), &dt));
		assert_int_equal(dt, CKPT_DT_UINT8 + i);
	}
	for (size_t i = 0; i < N(numpy); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_false(ckpt_dtype_parse_stored(numpy[i], strlen(numpy[i]),
						     &dt));
		assert_int_equal(dt, CKPT_DT_COUNT);
		/* while the general parser takes them */
		assert_true(ckpt_dtype_parse(numpy[i], strlen(numpy[i]), &dt));
	}
	{
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_true(ckpt_dtype_parse_stored("Float32xyz", 7, &dt));
		assert_int_equal(dt, CKPT_DT_FLOAT32);
		assert_false(ckpt_dtype_parse_stored("", 0, &dt));
		assert_false(ckpt_dtype_parse_stored("Int", 3, &dt));
		assert_false(ckpt_dtype_parse_stored("Int8\0", 5, &dt));
	}
}

static void test_unknown_names(void **state)
{
	static const char *const bad[] = {
		"",	   "Float",	"float",   "Int",	"int",
		"UINT8",   "uInt8",	"FLOAT32", "Float32 ",	" Float32",
		"Float33", "Float128",	"Int128",  "float32\n", "Str",
		"string",  "random_op", "BFloat",  "bf16",	"Bool8",
		"uint",	   "UInt",	"Uint",	   "object",
	};
	(void)state;
	for (size_t i = 0; i < N(bad); i++) {
		ckpt_dtype dt = CKPT_DT_COUNT;
		assert_false(parse(bad[i], &dt));
		assert_false(
			ckpt_dtype_parse_stored(bad[i], strlen(bad[i]), &dt));
		assert_int_equal(dt, CKPT_DT_COUNT); /* *out untouched */
	}
}

static void test_length_prefixed(void **state)
{
	ckpt_dtype dt = CKPT_DT_COUNT;
	(void)state;

	/* only len bytes count; no NUL needed */
	assert_true(ckpt_dtype_parse("Float32xyz", 7, &dt));
	assert_int_equal(dt, CKPT_DT_FLOAT32);
	assert_true(ckpt_dtype_parse("Int8000", 4, &dt));
	assert_int_equal(dt, CKPT_DT_INT8);
	assert_true(ckpt_dtype_parse("Int16", 5, &dt));
	assert_int_equal(dt, CKPT_DT_INT16);
	assert_true(ckpt_dtype_parse("UInt64", 6, &dt));
	assert_int_equal(dt, CKPT_DT_UINT64);
	assert_true(ckpt_dtype_parse("strong", 3, &dt));
	assert_int_equal(dt, CKPT_DT_STR);
	/* prefixes of valid names are not valid */
	dt = CKPT_DT_COUNT;
	assert_false(ckpt_dtype_parse("Int64", 3, &dt));
	assert_false(ckpt_dtype_parse("Float32", 6, &dt));
	assert_false(ckpt_dtype_parse("Float32", 0, &dt));
	/* an embedded NUL is part of the name */
	assert_false(ckpt_dtype_parse("Int8\0", 5, &dt));
	assert_false(ckpt_dtype_parse("Float32\0xy", 10, &dt));
	assert_int_equal(dt, CKPT_DT_COUNT);

	/* a buffer that is not NUL-terminated at all */
	char *exact = malloc(8);
	assert_non_null(exact);
	memcpy(exact, "Float64!", 8);
	assert_true(ckpt_dtype_parse(exact, 7, &dt));
	assert_int_equal(dt, CKPT_DT_FLOAT64);
	memcpy(exact, "BFloat16", 8);
	assert_true(ckpt_dtype_parse(exact, 8, &dt));
	assert_int_equal(dt, CKPT_DT_BFLOAT16);
	free(exact);
}

static void test_out_of_range_dtype(void **state)
{
	(void)state;
	assert_int_equal(ckpt_dtype_size(CKPT_DT_COUNT), 0);
	assert_int_equal(ckpt_dtype_size((ckpt_dtype)-1), 0);
	assert_non_null(ckpt_dtype_name(CKPT_DT_COUNT));
	assert_string_not_equal(ckpt_dtype_name(CKPT_DT_COUNT), "str");
}

/* ---- ckpt_shape_format ---- */

static void check_shape(const int64_t *dims, uint32_t ndims, const char *want)
{
	char buf[256];
	size_t wl = strlen(want);

	/* full buffer */
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(ckpt_shape_format(dims, ndims, buf, sizeof(buf)), wl);
	assert_string_equal(buf, want);
	/* size 0: nothing written, needed length returned */
	assert_int_equal(ckpt_shape_format(dims, ndims, NULL, 0), wl);
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(ckpt_shape_format(dims, ndims, buf, 0), wl);
	assert_int_equal(buf[0], 'X');
	/* every truncated size: a NUL-terminated prefix, nothing past size */
	for (size_t size = 1; size <= wl + 2; size++) {
		size_t got = size - 1 < wl ? size - 1 : wl;
		memset(buf, 'X', sizeof(buf));
		assert_int_equal(ckpt_shape_format(dims, ndims, buf, size), wl);
		assert_int_equal(strlen(buf), got);
		assert_memory_equal(buf, want, got);
		for (size_t k = size; k < sizeof(buf); k++)
			assert_int_equal(buf[k], 'X');
	}
}

static void test_shape_format(void **state)
{
	static const int64_t lenet[] = {6, 1, 5, 5};
	static const int64_t one[] = {1};
	static const int64_t zero4[] = {0, 4};
	static const int64_t big[] = {INT64_MAX, INT64_MIN, -1};
	int64_t many[64];
	char want[64 * 2 + 3];
	(void)state;

	check_shape(NULL, 0, "[]");
	check_shape(lenet, 0, "[]");
	check_shape(lenet, 4, "[6,1,5,5]");
	check_shape(one, 1, "[1]");
	check_shape(zero4, 2, "[0,4]");
	check_shape(big, 3, "[9223372036854775807,-9223372036854775808,-1]");
	strcpy(want, "[");
	for (int i = 0; i < 64; i++) {
		many[i] = i % 10;
		want[1 + 2 * i] = (char)('0' + i % 10);
		want[2 + 2 * i] = i == 63 ? ']' : ',';
	}
	want[129] = '\0';
	check_shape(many, 64, want);
}

/* ---- ckpt_name_escape ---- */

static void check_escape(const char *name, size_t len, const char *want)
{
	char *s = ckpt_name_escape(name, len);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
}

static void test_name_escape(void **state)
{
	(void)state;
	check_escape("conv1.weight", 12, "conv1.weight");
	check_escape("backbone.layer1.0.conv1.weight", 30,
		     "backbone.layer1.0.conv1.weight");
	check_escape("a/b", 3, "a%2Fb");
	check_escape("/", 1, "%2F");
	check_escape("%", 1, "%25");
	check_escape("100%/x", 6, "100%25%2Fx");
	check_escape("a\0b", 3, "a%00b");
	check_escape("\0", 1, "%00");
	check_escape(".", 1, "%2E");
	check_escape("..", 2, "%2E%2E");
	check_escape("", 0, "%");
	check_escape("...", 3, "...");
	check_escape(".a", 2, ".a");
	check_escape("a.", 2, "a.");
	check_escape("a..", 3, "a..");
	check_escape("%2F", 3, "%252F");
	check_escape("Parameter#3 x-y", 15, "Parameter#3 x-y");
	check_escape("a\nb\tc", 5, "a%0Ab%09c");
	check_escape("\x1b[0m\x7f", 5, "%1B[0m%7F");
	check_escape("\xe4\xb8\xad", 3, "\xe4\xb8\xad"); /* UTF-8 kept */
	/* only len bytes are looked at */
	check_escape("abc/def", 3, "abc");
	check_escape("..x", 2, "%2E%2E");
	check_escape(".x", 1, "%2E");
}

/* Distinct names never get the same escaped form. */
static void test_name_escape_injective(void **state)
{
	static const char *const names[] = {
		"",    "%",	 "%25", "%2F", "/",  ".",    "..",     "...",
		"%2E", "%2E%2E", "%00", "a",   "a/", "a%2F", "a%252F", "x.y",
	};
	char *esc[N(names) + 2];
	size_t n = N(names);
	(void)state;

	for (size_t i = 0; i < n; i++)
		esc[i] = ckpt_name_escape(names[i], strlen(names[i]));
	esc[n] = ckpt_name_escape("\0", 1);
	esc[n + 1] = ckpt_name_escape("\0\0", 2);
	for (size_t i = 0; i < n + 2; i++) {
		assert_non_null(esc[i]);
		assert_null(strchr(esc[i], '/'));
		assert_string_not_equal(esc[i], ".");
		assert_string_not_equal(esc[i], "..");
		assert_true(esc[i][0] != '\0');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(esc[i], esc[j]);
	}
	for (size_t i = 0; i < n + 2; i++)
		free(esc[i]);
}

/* A long name with every byte value. */
static void test_name_escape_all_bytes(void **state)
{
	char name[256 * 2];
	char *s;
	size_t k = 0;
	(void)state;

	for (int i = 0; i < 256; i++) {
		name[k++] = (char)i;
		name[k++] = 'z';
	}
	s = ckpt_name_escape(name, sizeof(name));
	assert_non_null(s);
	/* 35 escaped bytes ('%', '/', 0x00-0x1f, 0x7f) grow by 2 each */
	assert_int_equal(strlen(s), sizeof(name) + 35 * 2);
	assert_non_null(strstr(s, "%00z"));
	assert_non_null(strstr(s, "%0Az"));
	assert_non_null(strstr(s, "%1Bz"));
	assert_non_null(strstr(s, "%7Fz"));
	for (const char *c = s; *c; c++)
		assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
	assert_non_null(strstr(s, "%25z"));
	assert_non_null(strstr(s, "%2Fz"));
	assert_null(strchr(s, '/'));
	free(s);
}

/* ---- ckpt_name_decode and ckpt_name_unescape ---- */

/* decode (strict: unescape) of typed gives want (len bytes), or fails
 * with CKPT_ERR_INVAL when want is NULL. */
static void check_decode(bool strict, const char *typed, const char *want,
			 size_t len)
{
	char *name = NULL;
	size_t n = 0;
	ckpt_err r = strict ? ckpt_name_unescape(typed, &name, &n)
			    : ckpt_name_decode(typed, &name, &n);

	if (!want) {
		assert_int_equal(r, CKPT_ERR_INVAL);
		return;
	}
	assert_int_equal(r, CKPT_OK);
	assert_int_equal(n, len);
	assert_memory_equal(name, want, len);
	assert_int_equal(name[len], '\0');
	free(name);
}

static void test_name_decode(void **state)
{
	(void)state;
	/* every %XX, any case, canonical or not */
	check_decode(false, "a%20b", "a b", 3);
	check_decode(false, "%41%2f%2F", "A//", 3);
	check_decode(false, "100%25%2Fx", "100%/x", 6);
	check_decode(false, "a%00b", "a\0b", 3);
	check_decode(false, "%", "", 0);
	check_decode(false, "plain.name", "plain.name", 10);
	check_decode(false, "%2E%2E", "..", 2);
	check_decode(false, "..", "..", 2);
	/* a '%' without two hex digits */
	check_decode(false, "a%", NULL, 0);
	check_decode(false, "a%2", NULL, 0);
	check_decode(false, "a%zz", NULL, 0);
	check_decode(false, "%%", NULL, 0);
	/* unescape takes only what ckpt_name_escape gives */
	check_decode(true, "100%25%2Fx", "100%/x", 6);
	check_decode(true, "%", "", 0);
	check_decode(true, "a%00b", "a\0b", 3);
	check_decode(true, "a%20b", NULL, 0);
	check_decode(true, "%2f", NULL, 0);
	check_decode(true, "..", NULL, 0);
	check_decode(true, "a%zz", NULL, 0);
}

static void test_errors(void **state)
{
	struct ckpt_error e = {0};
	(void)state;

	for (int c = CKPT_OK; c <= CKPT_ERR_INVAL; c++) {
		assert_non_null(ckpt_strerror((ckpt_err)c));
		assert_true(strlen(ckpt_strerror((ckpt_err)c)) > 0);
	}
	e.code = CKPT_OK;
	assert_int_equal(ckpt_errno(&e), 0);
	e.code = CKPT_ERR_NOTFOUND;
	assert_int_equal(ckpt_errno(&e), ENOENT);
	e.code = CKPT_ERR_NOMEM;
	assert_int_equal(ckpt_errno(&e), ENOMEM);
	e.code = CKPT_ERR_CORRUPT;
	assert_int_equal(ckpt_errno(&e), EIO);
	e.code = CKPT_ERR_INVAL;
	assert_int_equal(ckpt_errno(&e), EINVAL);
	e.code = CKPT_ERR_IO;
	e.sys_errno = EACCES;
	assert_int_equal(ckpt_errno(&e), EACCES);
	e.sys_errno = 0;
	assert_int_equal(ckpt_errno(&e), EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_complete),
		cmocka_unit_test(test_every_name_parses),
		cmocka_unit_test(test_old_unsigned_spelling),
		cmocka_unit_test(test_safetensors_names),
		cmocka_unit_test(test_numpy_aliases),
		cmocka_unit_test(test_parse_stored),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_length_prefixed),
		cmocka_unit_test(test_out_of_range_dtype),
		cmocka_unit_test(test_shape_format),
		cmocka_unit_test(test_name_escape),
		cmocka_unit_test(test_name_escape_injective),
		cmocka_unit_test(test_name_escape_all_bytes),
		cmocka_unit_test(test_name_decode),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
