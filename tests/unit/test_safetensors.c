/*
 * test_safetensors.c - the safetensors format module (format/safetensors/):
 * headers read (valid and refused ones, safetensors-format.md sections 2.2
 * and 2.5), MindSpore's crc_num (section 1.8, computed here by hand), and
 * the encode through the seam (format.h) against a fake snapshot and an
 * emitter that collects the bytes, compared byte for byte with what Hugging
 * Face's serializer writes (section 1.7) and with the real fixtures.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"
#include "ckpt.h"
#include "format/format.h"

#define LABEL "unit.safetensors"

/* ---- building and opening files ---------------------------------------- */

static void put_u64(struct buf *b, uint64_t v)
{
	uint8_t le[8];

	for (int k = 0; k < 8; k++)
		le[k] = (uint8_t)(v >> (8 * k));
	buf_bytes(b, le, 8);
}

/* [N][hdr, hlen bytes][data]: N as given. */
static void mk_raw(struct buf *b, uint64_t n, const char *hdr, size_t hlen,
		   const void *data, size_t dlen)
{
	put_u64(b, n);
	buf_bytes(b, hdr, hlen);
	if (dlen)
		buf_bytes(b, data, dlen);
}

/* A file of header json (padded with spaces to a multiple of 8 if pad)
 * and dlen bytes of data. */
static void mk(struct buf *b, const char *json, bool pad, const void *data,
	       size_t dlen)
{
	size_t len = strlen(json), padded = pad ? (len + 7) / 8 * 8 : len;

	put_u64(b, padded);
	buf_bytes(b, json, len);
	for (size_t i = len; i < padded; i++)
		buf_bytes(b, " ", 1);
	if (dlen)
		buf_bytes(b, data, dlen);
}

static int memfd_of(const void *p, size_t n)
{
	int fd = memfd_create("st-unit", MFD_CLOEXEC);

	assert_true(fd >= 0);
	if (n)
		assert_int_equal(write(fd, p, n), (ssize_t)n);
	return fd;
}

/* Opens the bytes of b as LABEL; format NULL: by content. */
static ckpt_err open_as(const struct buf *b, const char *format, bool skip_crc,
			struct ckpt_file **f, struct ckpt_error *err)
{
	struct ckpt_open_opts o = {.skip_crc = skip_crc, .format = format};

	memset(err, 0, sizeof(*err));
	return ckpt_open_fd(memfd_of(b->p, b->len), LABEL, &o, f, err);
}

static struct ckpt_file *open_ok(const struct buf *b, const char *format)
{
	struct ckpt_file *f = NULL;
	struct ckpt_error err;
	ckpt_err rc = open_as(b, format, false, &f, &err);

	if (rc)
		print_error("unexpected error: %s\n", err.msg);
	assert_int_equal(rc, CKPT_OK);
	assert_string_equal(ckpt_format_of(f), "safetensors");
	return f;
}

static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 29 + 3);
}

static const uint8_t *data64(void)
{
	static uint8_t d[4096];

	for (size_t i = 0; i < sizeof(d); i++)
		d[i] = pat(i);
	return d;
}

/* Asserts that parameter i of f is name, dtype dt, shape dims[ndims],
 * holding the size bytes at want. */
static void check_param(const struct ckpt_file *f, size_t i, const char *name,
			ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			const uint8_t *want, uint64_t size)
{
	const struct ckpt_param *p;
	uint8_t *got;

	assert_true(i < ckpt_count(f));
	p = ckpt_param_at(f, i);
	assert_int_equal(p->name_len, strlen(name));
	assert_memory_equal(p->name, name, strlen(name));
	assert_int_equal(p->kind, CKPT_PARAM_TENSOR);
	assert_int_equal(p->tensor.dtype, dt);
	assert_int_equal(p->tensor.ndims, ndims);
	for (uint32_t d = 0; d < ndims; d++)
		assert_int_equal(p->tensor.dims[d], dims[d]);
	assert_int_equal(p->tensor.size, size);
	assert_true(ckpt_find(f, p->fname) == (ssize_t)i);
	got = read_tensor(f, &p->tensor);
	if (size)
		assert_memory_equal(got, want, size);
	free(got);
}

/* ---- valid headers ----------------------------------------------------- */

/* The document's worked example (section 1.7), as HF writes it. */
static const char worked_json[] =
	"{\"__metadata__\":{\"format\":\"ms\"},\"fc.bias\":{\"dtype\":\"F32\","
	"\"shape\":[2],\"data_offsets\":[0,8]},\"fc.weight\":{\"dtype\":"
	"\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]},\"global_step\":{"
	"\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[24,28]}}";

static void check_worked(const struct ckpt_file *f, const uint8_t *d)
{
	static const int64_t d2[] = {2}, d22[] = {2, 2}, d1[] = {1};
	const struct ckpt_meta_item *m;

	assert_int_equal(ckpt_count(f), 3);
	check_param(f, 0, "fc.bias", CKPT_DT_FLOAT32, d2, 1, d, 8);
	check_param(f, 1, "fc.weight", CKPT_DT_FLOAT32, d22, 2, d + 8, 16);
	check_param(f, 2, "global_step", CKPT_DT_INT32, d1, 1, d + 24, 4);
	assert_string_equal(ckpt_param_at(f, 0)->tensor.type_str, "F32");
	assert_string_equal(ckpt_param_at(f, 2)->tensor.type_str, "I32");
	assert_true(ckpt_has_metadata(f));
	assert_int_equal(ckpt_meta_count(f), 1);
	m = ckpt_meta_at(f, 0);
	assert_string_equal(m->key, "format");
	assert_string_equal(m->value, "ms");
	assert_false(m->json);
	assert_false(m->marker);
	assert_false(ckpt_stats(f)->has_crc);
	assert_int_equal(ckpt_stats(f)->data_bytes, 28);
}

static void test_valid_padded(void **state)
{
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	(void)state;

	assert_int_equal(strlen(worked_json), 220);
	mk(&b, worked_json, true, d, 28);
	assert_int_equal(b.len, 260);
	assert_int_equal(b.p[0], 0xe0);
	/* by content and forced */
	f = open_ok(&b, NULL);
	check_worked(f, d);
	assert_int_equal(ckpt_stats(f)->header_size, 224);
	assert_int_equal(ckpt_stats(f)->file_size, 260);
	assert_int_equal(ckpt_stats(f)->records, 3);
	ckpt_close(f);
	f = open_ok(&b, "safetensors");
	check_worked(f, d);
	ckpt_close(f);
	buf_free(&b);
}

static void test_valid_unpadded_and_whitespace(void **state)
{
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	char *ws;
	(void)state;

	mk(&b, worked_json, false, d, 28); /* N = 220 */
	f = open_ok(&b, NULL);
	check_worked(f, d);
	assert_int_equal(ckpt_stats(f)->header_size, 220);
	ckpt_close(f);
	buf_free(&b);

	/* leading and trailing JSON whitespace, N odd */
	assert_true(asprintf(&ws, " \t\r\n%s\n\t \r", worked_json) > 0);
	mk(&b, ws, false, d, 28);
	f = open_ok(&b, NULL);
	check_worked(f, d);
	ckpt_close(f);
	buf_free(&b);
	mk(&b, ws, true, d, 28);
	f = open_ok(&b, "safetensors");
	check_worked(f, d);
	ckpt_close(f);
	buf_free(&b);
	free(ws);
}

static void test_valid_any_key_order(void **state)
{
	/* the tensors against data order, the metadata in the middle */
	static const char json[] =
		"{\"global_step\":{\"data_offsets\":[24,28],\"shape\":[1],"
		"\"dtype\":\"I32\"},\"fc.weight\":{\"shape\":[2,2],\"dtype\":"
		"\"F32\",\"data_offsets\":[8,24]},\"__metadata__\":{\"format\":"
		"\"ms\"},\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],"
		"\"data_offsets\":[0,8],\"extra\":[1,{\"x\":null}]}}";
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	(void)state;

	mk(&b, json, true, d, 28);
	f = open_ok(&b, NULL);
	check_worked(f, d);
	ckpt_close(f);
	buf_free(&b);
}

static void test_valid_zero_size_and_scalars(void **state)
{
	/* data: s (F64 0-d, 8) | e1 e2 e3 (empty, at 8) | t (BOOL 0-d, 1) |
	 * z (empty, at 9, the last) */
	static const char json[] =
		"{\"t\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[8,9]},"
		"\"e2\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[8,"
		"8]},\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]"
		"},\"e1\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[8,8]"
		"},\"e3\":{\"dtype\":\"U8\",\"shape\":[0,5,0],\"data_offsets\":"
		"[8,8]},\"z\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\""
		":[9,9]}}";
	static const int64_t d20[] = {2, 0}, d0[] = {0}, d050[] = {0, 5, 0},
			     d30[] = {3, 0};
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	(void)state;

	mk(&b, json, true, d, 9);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_count(f), 6);
	check_param(f, 0, "s", CKPT_DT_FLOAT64, NULL, 0, d, 8);
	/* the empty ones at 8 in their JSON order */
	check_param(f, 1, "e2", CKPT_DT_FLOAT32, d20, 2, NULL, 0);
	check_param(f, 2, "e1", CKPT_DT_INT64, d0, 1, NULL, 0);
	check_param(f, 3, "e3", CKPT_DT_UINT8, d050, 3, NULL, 0);
	check_param(f, 4, "t", CKPT_DT_BOOL, NULL, 0, d + 8, 1);
	check_param(f, 5, "z", CKPT_DT_FLOAT16, d30, 2, NULL, 0);
	assert_false(ckpt_has_metadata(f));
	assert_int_equal(ckpt_meta_count(f), 0);
	ckpt_close(f);
	buf_free(&b);

	/* no tensors at all: save_file({}) */
	mk(&b, "{}", true, NULL, 0);
	assert_int_equal(b.len, 16);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_count(f), 0);
	assert_false(ckpt_has_metadata(f));
	ckpt_close(f);
	buf_free(&b);
}

static void test_valid_metadata_places(void **state)
{
	static const char *const jsons[] = {
		/* first, last, absent, empty */
		"{\"__metadata__\":{\"b\":\"2\",\"a\":\"1\"},\"x\":{\"dtype\":"
		"\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
		"{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
		"\"__metadata__\":{\"b\":\"2\",\"a\":\"1\"}}",
		"{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
		"{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
		"\"__metadata__\":{}}",
	};
	static const int64_t d2[] = {2};
	const uint8_t *d = data64();
	(void)state;

	for (size_t k = 0; k < 4; k++) {
		struct buf b = {0};
		struct ckpt_file *f;

		mk(&b, jsons[k], true, d, 2);
		f = open_ok(&b, NULL);
		assert_int_equal(ckpt_count(f), 1);
		check_param(f, 0, "x", CKPT_DT_UINT8, d2, 1, d, 2);
		assert_int_equal(ckpt_has_metadata(f), k != 2);
		assert_int_equal(ckpt_meta_count(f), k < 2 ? 2 : 0);
		if (k < 2) {
			/* in the file's order, not sorted */
			assert_string_equal(ckpt_meta_at(f, 0)->key, "b");
			assert_string_equal(ckpt_meta_at(f, 0)->value, "2");
			assert_string_equal(ckpt_meta_at(f, 1)->key, "a");
			assert_string_equal(ckpt_meta_at(f, 1)->value, "1");
		}
		ckpt_close(f);
		buf_free(&b);
	}
}

static void test_valid_metadata_values(void **state)
{
	static const char json[] =
		"{\"__metadata__\":{\"n\":12,\"l\":[1, \"x\", null],"
		"\"o\":{\"k\" : {\"z\":false}},\"t\":true,\"s\":\"str\","
		"\"u\":\"\xc3\xa9\\u00e9\\n\",\"r\":1.5,\"z\":null},\"x\":{"
		"\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
	static const struct {
		const char *key, *value;
		bool json;
	} want[] = {
		{"n", "12", true},
		{"l", "[1,\"x\",null]", true},
		{"o", "{\"k\":{\"z\":false}}", true},
		{"t", "true", true},
		{"s", "str", false},
		{"u", "\xc3\xa9\xc3\xa9\n", false},
		{"r", "1.5", true},
		{"z", "null", true},
	};
	struct buf b = {0};
	struct ckpt_file *f;
	(void)state;

	mk(&b, json, true, data64(), 1);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_meta_count(f), 8);
	for (size_t i = 0; i < 8; i++) {
		const struct ckpt_meta_item *m = ckpt_meta_at(f, i);
		assert_string_equal(m->key, want[i].key);
		assert_string_equal(m->value, want[i].value);
		assert_int_equal(m->json, want[i].json);
		assert_false(m->marker);
	}
	ckpt_close(f);
	buf_free(&b);
}

static void test_valid_int4_markers(void **state)
{
	/* q: I8 marked -> Int4; w: F32 marked (stays F32, plain metadata);
	 * gone: no such tensor; u: U8 marked; j: I8 with a JSON "Int4"-like
	 * value; k: I8 with "int4" (case matters) */
	static const char json[] =
		"{\"__metadata__\":{\"format\":\"ms\",\"q\":\"Int4\",\"w\":"
		"\"Int4\",\"gone\":\"Int4\",\"u\":\"Int4\",\"j\":[\"Int4\"],"
		"\"k\":\"int4\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
		"\"data_offsets\":[0,4]},\"q\":{\"dtype\":\"I8\",\"shape\":[2,2],"
		"\"data_offsets\":[4,8]},\"u\":{\"dtype\":\"U8\",\"shape\":[1],"
		"\"data_offsets\":[8,9]},\"j\":{\"dtype\":\"I8\",\"shape\":[1],"
		"\"data_offsets\":[9,10]},\"k\":{\"dtype\":\"I8\",\"shape\":[1],"
		"\"data_offsets\":[10,11]}}";
	static const int64_t d1[] = {1}, d22[] = {2, 2};
	static const bool marker[] = {false, true,  false, false,
				      false, false, false};
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	(void)state;

	mk(&b, json, true, d, 11);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_count(f), 5);
	check_param(f, 0, "w", CKPT_DT_FLOAT32, d1, 1, d, 4);
	check_param(f, 1, "q", CKPT_DT_INT4, d22, 2, d + 4, 4);
	check_param(f, 2, "u", CKPT_DT_UINT8, d1, 1, d + 8, 1);
	check_param(f, 3, "j", CKPT_DT_INT8, d1, 1, d + 9, 1);
	check_param(f, 4, "k", CKPT_DT_INT8, d1, 1, d + 10, 1);
	assert_string_equal(ckpt_param_at(f, 1)->tensor.type_str, "I8");
	assert_int_equal(ckpt_meta_count(f), 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(ckpt_meta_at(f, i)->marker, marker[i]);
	assert_string_equal(ckpt_meta_at(f, 1)->key, "q");
	ckpt_close(f);
	buf_free(&b);
}

/* Every safetensors dtype (section 2.3) to the dtype the brief shows. */
static void test_valid_all_dtypes(void **state)
{
	static const struct {
		const char *st, *shown;
		ckpt_dtype dt;
		unsigned n, bytes; /* elements, their bytes */
	} t[] = {
		{"BOOL", "Bool", CKPT_DT_BOOL, 3, 3},
		{"U8", "UInt8", CKPT_DT_UINT8, 3, 3},
		{"I8", "Int8", CKPT_DT_INT8, 3, 3},
		{"I16", "Int16", CKPT_DT_INT16, 3, 6},
		{"U16", "UInt16", CKPT_DT_UINT16, 3, 6},
		{"F16", "Float16", CKPT_DT_FLOAT16, 3, 6},
		{"BF16", "BFloat16", CKPT_DT_BFLOAT16, 3, 6},
		{"I32", "Int32", CKPT_DT_INT32, 3, 12},
		{"U32", "UInt32", CKPT_DT_UINT32, 3, 12},
		{"F32", "Float32", CKPT_DT_FLOAT32, 3, 12},
		{"F64", "Float64", CKPT_DT_FLOAT64, 3, 24},
		{"I64", "Int64", CKPT_DT_INT64, 3, 24},
		{"U64", "UInt64", CKPT_DT_UINT64, 3, 24},
		{"F8_E4M3", "Float8E4M3FN", CKPT_DT_FLOAT8E4M3FN, 3, 3},
		{"F8_E5M2", "Float8E5M2", CKPT_DT_FLOAT8E5M2, 3, 3},
		{"C64", "Complex64", CKPT_DT_COMPLEX64, 3, 24},
		{"F8_E8M0", "F8_E8M0", CKPT_DT_F8_E8M0, 3, 3},
		{"F8_E4M3FNUZ", "F8_E4M3FNUZ", CKPT_DT_F8_E4M3FNUZ, 3, 3},
		{"F8_E5M2FNUZ", "F8_E5M2FNUZ", CKPT_DT_F8_E5M2FNUZ, 3, 3},
		{"F4", "F4", CKPT_DT_F4, 6, 3},
		{"F6_E2M3", "F6_E2M3", CKPT_DT_F6_E2M3, 4, 3},
		{"F6_E3M2", "F6_E3M2", CKPT_DT_F6_E3M2, 8, 6},
	};
	const size_t nt = sizeof(t) / sizeof(t[0]);
	char json[4096];
	size_t n = 0, at = 0;
	struct buf b = {0};
	struct ckpt_file *f;
	const uint8_t *d = data64();
	(void)state;

	n += (size_t)snprintf(json + n, sizeof(json) - n, "{");
	for (size_t i = 0; i < nt; i++) {
		n += (size_t)snprintf(
			json + n, sizeof(json) - n,
			"%s\"t%02zu\":{\"dtype\":\"%s\",\"shape\":"
			"[%u],\"data_offsets\":[%zu,%zu]}",
			i ? "," : "", i, t[i].st, t[i].n, at, at + t[i].bytes);
		at += t[i].bytes;
	}
	n += (size_t)snprintf(json + n, sizeof(json) - n, "}");
	assert_true(n < sizeof(json));
	mk(&b, json, true, d, at);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_count(f), nt);
	at = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		char name[8];
		int64_t dim = t[i].n;

		snprintf(name, sizeof(name), "t%02zu", i);
		check_param(f, i, name, t[i].dt, &dim, 1, d + at, t[i].bytes);
		assert_string_equal(ckpt_dtype_name(p->tensor.dtype),
				    t[i].shown);
		assert_string_equal(p->tensor.type_str, t[i].st);
		at += t[i].bytes;
	}
	ckpt_close(f);
	buf_free(&b);
}

/* ---- refused headers --------------------------------------------------- */

/* b must be refused as CKPT_ERR_CORRUPT with a message naming the file,
 * and the tensor if it is non-NULL; forced and (when the probe claims the
 * file) by content, with the same message then: the safetensors scan
 * refused it, not the ckpt one. */
static void refused_buf(const struct buf *b, const char *tensor, bool probed)
{
	char forced_msg[sizeof(((struct ckpt_error *)0)->msg)];

	for (int forced = 1; forced >= 0; forced--) {
		struct ckpt_file *f = NULL;
		struct ckpt_error err;
		ckpt_err rc;
		char quoted[256];

		if (!forced && !probed)
			continue;
		rc = open_as(b, forced ? "safetensors" : NULL, false, &f, &err);
		if (rc != CKPT_ERR_CORRUPT)
			print_error("%s: %d %s\n", tensor ? tensor : "-", rc,
				    err.msg);
		assert_int_equal(rc, CKPT_ERR_CORRUPT);
		assert_int_equal(err.code, CKPT_ERR_CORRUPT);
		assert_null(f);
		assert_non_null(strstr(err.msg, LABEL));
		if (forced)
			memcpy(forced_msg, err.msg, sizeof(forced_msg));
		else
			assert_string_equal(err.msg, forced_msg);
		if (tensor) {
			snprintf(quoted, sizeof(quoted), "'%s'", tensor);
			if (!strstr(err.msg, quoted))
				print_error("no %s in: %s\n", quoted, err.msg);
			assert_non_null(strstr(err.msg, quoted));
		}
	}
}

/* A file of json padded and dlen data bytes, refused. */
static void refused(const char *json, size_t dlen, const char *tensor)
{
	struct buf b = {0};

	mk(&b, json, true, data64(), dlen);
	refused_buf(&b, tensor, json[0] == '{');
	buf_free(&b);
}

static void test_refused_lengths(void **state)
{
	struct buf b = {0};
	(void)state;

	/* shorter than the 8-byte length */
	buf_bytes(&b, "\x02\0\0\0\0", 5);
	refused_buf(&b, NULL, false);
	buf_free(&b);
	/* 0 bytes */
	refused_buf(&b, NULL, false);
	/* N over 100,000,000 (the file holds 100000001 + 8 - it need not:
	 * the limit is checked first) */
	mk_raw(&b, 100000001ULL, "{}      ", 8, NULL, 0);
	refused_buf(&b, NULL, true);
	buf_free(&b);
	mk_raw(&b, UINT64_MAX, "{}      ", 8, NULL, 0);
	refused_buf(&b, NULL, false);
	buf_free(&b);
	/* N past the end of the file */
	mk_raw(&b, 9, "{}      ", 8, NULL, 0);
	refused_buf(&b, NULL, true);
	buf_free(&b);
	mk_raw(&b, 1000, "{\"a\":1}", 7, NULL, 0);
	refused_buf(&b, NULL, true);
	buf_free(&b);
	/* N = 0 and N = 1 (not probed) */
	mk_raw(&b, 0, "{}", 2, NULL, 0);
	refused_buf(&b, NULL, false);
	buf_free(&b);
	mk_raw(&b, 1, "{}", 2, NULL, 0);
	refused_buf(&b, NULL, false);
	buf_free(&b);
}

static void test_refused_the_fixture(void **state)
{
	char path[4096];
	const char *slash = strrchr(__FILE__, '/');
	struct buf b = {0};
	(void)state;

	assert_non_null(slash);
	snprintf(path, sizeof(path),
		 "%.*s/../fixtures/safetensors/"
		 "NEG_syoyo_abuse_attempt_1.safetensors",
		 (int)(slash - __FILE__), __FILE__);
	assert_true(buf_read_file(&b, path));
	refused_buf(&b, NULL, true);
	buf_free(&b);
}

static void test_refused_json(void **state)
{
	struct buf b = {0};
	(void)state;

	refused("{\"a\":", 0, NULL);
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}}}",
		1, NULL);
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}} x",
		1, NULL);
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]},}",
		1, NULL);
	/* invalid UTF-8: in a value, in a name, an overlong '/' */
	refused("{\"__metadata__\":{\"k\":\"\xff\"}}", 0, NULL);
	refused("{\"a\xc3\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}}",
		1, NULL);
	refused("{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, NULL);
	/* duplicate keys: tensors, metadata, inside the metadata */
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[1,2]}}",
		2, NULL);
	refused("{\"__metadata__\":{},\"__metadata__\":{}}", 0, NULL);
	refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, NULL);
	/* the top level is not an object */
	refused("[]", 0, NULL);
	refused("[{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}}]",
		1, NULL);
	refused("\"{}\"", 0, NULL);
	refused("7", 0, NULL);
	/* padded with NULs instead of spaces */
	mk_raw(&b, 8, "{}\0\0\0\0\0\0", 8, NULL, 0);
	refused_buf(&b, NULL, true);
	buf_free(&b);
	/* __metadata__ not an object */
	refused("{\"__metadata__\":\"x\"}", 0, NULL);
	refused("{\"__metadata__\":[]}", 0, NULL);
}

static void test_refused_entries(void **state)
{
	(void)state;

	/* not an object */
	refused("{\"t\":[1]}", 0, "t");
	refused("{\"t\":\"U8\"}", 0, "t");
	refused("{\"t\":null}", 0, "t");
	/* a field missing or of the wrong type */
	refused("{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "t");
	refused("{\"t\":{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
		"t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":1}}",
		1, "t");
	/* unknown dtypes */
	refused("{\"t\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":"
		"[0,16]}}",
		16, "t");
	refused("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":"
		"[0,4]}}",
		4, "t");
	refused("{\"t\":{\"dtype\":\"Float32\",\"shape\":[1],\"data_offsets\":"
		"[0,4]}}",
		4, "t");
	refused("{\"t\":{\"dtype\":\"Int4\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	/* shapes: negative, float, huge, not integers */
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1e30],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[null],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[[1]],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	/* the product overflows 64 bits */
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
		"\"data_offsets\":[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
		"\"data_offsets\":[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[9223372036854775807,0,"
		"3],\"data_offsets\":[0,0]}, \"u\":{\"dtype\":\"U8\","
		"\"shape\":[9223372036854775807],\"data_offsets\":[0,1]}}",
		1, "u");
	/* beyond any integer (the JSON parser says so) */
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
		"\"data_offsets\":[0,1]}}",
		1, NULL);
	/* data_offsets of the wrong length or kind */
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1,2]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[-1,0]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1.0]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"{\"0\":1}}}",
		1, "t");
	/* end < begin */
	refused("{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":"
		"[4,0]}}",
		4, "t");
	/* the size does not match the shape */
	refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
		"[0,4]}}",
		4, "t");
	refused("{\"t\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":"
		"[0,0]}}",
		0, "t");
	refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]},\"t\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":"
		"[1,8]}}",
		8, "t");
	/* F4 / F6 elements that do not fill whole bytes */
	refused("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":"
		"[0,2]}}",
		2, "t");
	refused("{\"t\":{\"dtype\":\"F4\",\"shape\":[],\"data_offsets\":"
		"[0,1]}}",
		1, "t");
	refused("{\"t\":{\"dtype\":\"F6_E3M2\",\"shape\":[2],\"data_offsets\":"
		"[0,2]}}",
		2, "t");
	/* more than CKPT_MAX_DIMS dims */
	{
		char json[1024];
		size_t n = (size_t)snprintf(json, sizeof(json),
					    "{\"t\":{\"dtype\":\"U8\","
					    "\"shape\":[1");
		for (int i = 0; i < CKPT_MAX_DIMS; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n, ",1");
		snprintf(json + n, sizeof(json) - n,
			 "],\"data_offsets\":[0,1]}}");
		refused(json, 1, "t");
	}
}

static void test_refused_layout(void **state)
{
	static const char two[] =
		"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"
		"},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"
		"}}";
	struct buf b = {0};
	struct ckpt_file *f;
	(void)state;

	/* the good one first */
	mk(&b, two, true, data64(), 8);
	f = open_ok(&b, NULL);
	assert_int_equal(ckpt_count(f), 2);
	ckpt_close(f);
	buf_free(&b);
	/* hole: before the first, between two */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
		"[4,8]}}",
		8, "a");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
		"[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\""
		":[8,12]}}",
		12, "b");
	/* overlap, and two at the same place */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
		"[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\""
		":[4,12]}}",
		12, "b");
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
		"[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\""
		":[0,4]}}",
		4, "b");
	/* an empty tensor in the middle of another */
	refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
		"[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\""
		":[4,4]}}",
		8, "b");
	/* trailing bytes, truncated data */
	refused(two, 9, NULL);
	refused(two, 7, NULL);
	refused(two, 0, NULL);
	refused("{}", 1, NULL);
	refused("{\"__metadata__\":{\"format\":\"ms\"}}", 3, NULL);
	/* the trailing-bytes message says how many */
	{
		struct ckpt_error err;
		mk(&b, two, true, data64(), 11);
		assert_int_equal(open_as(&b, NULL, false, &f, &err),
				 CKPT_ERR_CORRUPT);
		assert_non_null(strstr(err.msg, "3 bytes"));
		buf_free(&b);
	}
}

/* ---- crc_num (section 1.8) --------------------------------------------- */

/* A tensor for the CRC tests: name, safetensors dtype, 0-d or [n]. */
struct crc_t {
	const char *name, *st;
	bool scalar;
	uint8_t bytes[8];
	size_t len;
	bool integer; /* a 0-d integer: the quirk */
	uint64_t value;
};

/* MindSpore's crc_num by hand: names sorted by bytes, crc32(name) then
 * crc32(bytes(array)), where bytes() of a 0-d integer is VALUE zeros. */
static uint32_t hand_crc(const struct crc_t *t, size_t n, bool quirk)
{
	size_t order[16];
	uint32_t crc = 0;

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = 1; i < n; i++) /* insertion sort by strcmp */
		for (size_t k = i; k > 0 && strcmp(t[order[k - 1]].name,
						   t[order[k]].name) > 0;
		     k--) {
			size_t x = order[k];
			order[k] = order[k - 1];
			order[k - 1] = x;
		}
	for (size_t i = 0; i < n; i++) {
		const struct crc_t *c = &t[order[i]];
		crc = ckpt_crc32(crc, c->name, strlen(c->name));
		if (quirk && c->scalar && c->integer) {
			uint8_t *z = calloc(1, c->value + 1);
			assert_non_null(z);
			crc = ckpt_crc32(crc, z, c->value);
			free(z);
		} else {
			crc = ckpt_crc32(crc, c->bytes, c->len);
		}
	}
	return crc;
}

/* A file of the tensors t[n] in that order, its metadata meta (a JSON
 * object's inside, may be empty). */
static void mk_crc_file(struct buf *b, const struct crc_t *t, size_t n,
			const char *meta)
{
	char json[4096];
	uint8_t data[256];
	size_t len = 0, at = 0;

	len += (size_t)snprintf(json, sizeof(json), "{\"__metadata__\":{%s}",
				meta);
	for (size_t i = 0; i < n; i++) {
		len += (size_t)snprintf(
			json + len, sizeof(json) - len,
			",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],"
			"\"data_offsets\":[%zu,%zu]}",
			t[i].name, t[i].st, t[i].scalar ? "" : "1", at,
			at + t[i].len);
		memcpy(data + at, t[i].bytes, t[i].len);
		at += t[i].len;
	}
	snprintf(json + len, sizeof(json) - len, "}");
	mk(b, json, true, data, at);
}

static const struct crc_t crc_tensors[] = {
	{"w", "F32", false, {1, 2, 3, 4}, 4, false, 0},
	{"step", "I64", true, {7, 0, 0, 0, 0, 0, 0, 0}, 8, true, 7},
	{"b", "F64", true, {9, 8, 7, 6, 5, 4, 3, 2}, 8, false, 0},
	{"ep", "I32", false, {5, 0, 0, 0}, 4, false, 0}, /* [1]: raw */
	{"u", "U8", true, {0}, 1, true, 0},		 /* 0 zeros */
	{"i4", "I8", true, {3}, 1, true, 3},		 /* Int4 0-d */
	{"flag", "BOOL", true, {1}, 1, false, 0},	 /* raw */
	{"B", "U16", true, {2, 1}, 2, true, 258},
	{"big", "U32", true, {0xc0, 0xc6, 0x2d, 0}, 4, true, 3000000},
};
#define NCRC (sizeof(crc_tensors) / sizeof(crc_tensors[0]))

static void test_crc_match(void **state)
{
	uint32_t want = hand_crc(crc_tensors, NCRC, true);
	char meta[128];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_stats *st;
	struct ckpt_error err;
	(void)state;

	assert_int_not_equal(want, hand_crc(crc_tensors, NCRC, false));
	/* crc_num between other keys; i4 marked Int4 */
	snprintf(meta, sizeof(meta),
		 "\"format\":\"ms\",\"crc_num\":\"%u\",\"i4\":\"Int4\"", want);
	mk_crc_file(&b, crc_tensors, NCRC, meta);
	f = open_ok(&b, NULL);
	st = ckpt_stats(f);
	assert_true(st->has_crc);
	assert_false(st->crc_wide);
	assert_true(st->crc_checked);
	assert_int_equal(st->crc_stored, want);
	assert_int_equal(st->crc_computed, want);
	assert_int_equal(ckpt_param_at(f, 5)->tensor.dtype, CKPT_DT_INT4);
	assert_int_equal(ckpt_verify_crc(f, &err), CKPT_OK);
	ckpt_close(f);
	buf_free(&b);
}

static void test_crc_mismatch(void **state)
{
	uint32_t good = hand_crc(crc_tensors, NCRC, true);
	uint32_t bad[] = {good + 1, hand_crc(crc_tensors, NCRC, false), 0};
	struct buf b = {0};
	struct ckpt_file *f;
	struct ckpt_error err;
	(void)state;

	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char meta[64];

		snprintf(meta, sizeof(meta), "\"crc_num\":\"%u\"", bad[k]);
		mk_crc_file(&b, crc_tensors, NCRC, meta);
		assert_int_equal(open_as(&b, NULL, false, &f, &err),
				 CKPT_ERR_CRC);
		assert_null(f);
		assert_non_null(strstr(err.msg, LABEL));
		assert_non_null(strstr(err.msg, "mismatch"));
		/* skipped: opens; verified later: the mismatch */
		assert_int_equal(open_as(&b, NULL, true, &f, &err), CKPT_OK);
		assert_true(ckpt_stats(f)->has_crc);
		assert_false(ckpt_stats(f)->crc_checked);
		assert_int_equal(ckpt_verify_crc(f, &err), CKPT_ERR_CRC);
		assert_int_equal(ckpt_stats(f)->crc_computed, good);
		ckpt_close(f);
		buf_free(&b);
	}
	/* a crc_num that is no 32-bit decimal */
	static const char *const wide[] = {
		"\"crc_num\":\"4294967296\"",
		"\"crc_num\":\"-1\"",
		"\"crc_num\":\"12x\"",
		"\"crc_num\":\"\"",
		"\"crc_num\":123",
		"\"crc_num\":null",
	};
	for (size_t k = 0; k < sizeof(wide) / sizeof(wide[0]); k++) {
		mk_crc_file(&b, crc_tensors, NCRC, wide[k]);
		assert_int_equal(open_as(&b, NULL, false, &f, &err),
				 CKPT_ERR_CRC);
		assert_non_null(strstr(err.msg, LABEL));
		assert_int_equal(open_as(&b, NULL, true, &f, &err), CKPT_OK);
		assert_true(ckpt_stats(f)->crc_wide);
		ckpt_close(f);
		buf_free(&b);
	}
	/* no crc_num: nothing checked */
	mk_crc_file(&b, crc_tensors, NCRC, "\"format\":\"ms\"");
	f = open_ok(&b, NULL);
	assert_false(ckpt_stats(f)->has_crc);
	assert_false(ckpt_stats(f)->crc_checked);
	assert_int_equal(ckpt_verify_crc(f, &err), CKPT_OK);
	ckpt_close(f);
	buf_free(&b);
}

static void test_crc_negative_scalar(void **state)
{
	static const struct crc_t neg[][1] = {
		{{"n",
		  "I64",
		  true,
		  {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		  8,
		  true,
		  0}},
		{{"n", "I8", true, {0x80}, 1, true, 0}},
		{{"n", "I16", true, {0, 0x80}, 2, true, 0}},
		{{"n", "I32", true, {0, 0, 0, 0x80}, 4, true, 0}},
	};
	struct buf b = {0};
	struct ckpt_file *f;
	struct ckpt_error err;
	(void)state;

	for (size_t k = 0; k < sizeof(neg) / sizeof(neg[0]); k++) {
		mk_crc_file(&b, neg[k], 1, "\"crc_num\":\"0\"");
		assert_int_equal(open_as(&b, NULL, false, &f, &err),
				 CKPT_ERR_UNSUPPORTED);
		assert_null(f);
		assert_non_null(strstr(err.msg, "'n'"));
		assert_int_equal(open_as(&b, NULL, true, &f, &err), CKPT_OK);
		assert_int_equal(ckpt_verify_crc(f, &err),
				 CKPT_ERR_UNSUPPORTED);
		ckpt_close(f);
		buf_free(&b);
	}
	/* the same bytes as a U64: that many zeros (0xff..ff is over the
	 * 4 GiB MindSpore could allocate: unsupported too), as [1]: raw */
	{
		struct crc_t t = neg[0][0];
		char meta[64];

		t.st = "U64";
		mk_crc_file(&b, &t, 1, "\"crc_num\":\"0\"");
		assert_int_equal(open_as(&b, NULL, false, &f, &err),
				 CKPT_ERR_UNSUPPORTED);
		buf_free(&b);
		t.st = "I64";
		t.scalar = false;
		snprintf(meta, sizeof(meta), "\"crc_num\":\"%u\"",
			 hand_crc(&t, 1, true));
		mk_crc_file(&b, &t, 1, meta);
		f = open_ok(&b, NULL);
		assert_true(ckpt_stats(f)->crc_checked);
		ckpt_close(f);
		buf_free(&b);
	}
}

/* ---- encode: a fake snapshot, an emitter that collects ------------------ */

struct tt {
	const char *name;
	size_t name_len; /* 0: strlen(name) */
	ckpt_dtype dt;
	uint32_t ndims;
	int64_t dims[4];
	const uint8_t *data;
	uint64_t size;
	bool is_map, skip;
};

struct fake {
	struct tt *t;
	size_t n;
	char warns[16][400];
	int nwarn;
	int nread; /* bytes read through s->read */
};

static size_t tt_len(const struct tt *t)
{
	return t->name_len ? t->name_len : strlen(t->name);
}

static ckpt_err fake_param(const struct ckpt_snapshot *s, size_t i,
			   struct ckpt_out_param *p, struct ckpt_error *err)
{
	const struct fake *fk = s->ctx;
	const struct tt *t = &fk->t[i];
	(void)err;

	assert_true(i < fk->n);
	memset(p, 0x5a, sizeof(*p)); /* nothing may be left unset */
	p->skip = t->skip;
	p->is_map = t->is_map;
	p->untouched = false;
	p->name = t->name;
	p->name_len = tt_len(t);
	p->fname = t->name;
	p->dtype = t->dt;
	p->ndims = t->ndims;
	memcpy(p->dims, t->dims, sizeof(t->dims));
	p->size = t->size;
	p->entry = (const struct entry *)(const void *)t;
	p->orig = NULL;
	p->orig_fd = -1;
	return CKPT_OK;
}

static ckpt_err fake_read(const struct ckpt_snapshot *s, const struct entry *e,
			  uint64_t off, void *buf, size_t len,
			  struct ckpt_error *err)
{
	const struct tt *t = (const struct tt *)(const void *)e;
	struct fake *fk = (struct fake *)CKPT_UNCONST(s->ctx);
	(void)err;

	assert_true(off + len <= t->size);
	memcpy(buf, t->data + off, len);
	fk->nread += (int)len;
	return CKPT_OK;
}

static void fake_warn(void *ctx, const char *msg)
{
	struct fake *fk = ctx;

	assert_null(strchr(msg, '\n'));
	if (fk->nwarn < 16)
		snprintf(fk->warns[fk->nwarn], sizeof(fk->warns[0]), "%s", msg);
	fk->nwarn++;
}

/* Whether some warning of fk has needle in it. */
static bool warned(const struct fake *fk, const char *needle)
{
	for (int i = 0; i < fk->nwarn && i < 16; i++)
		if (strstr(fk->warns[i], needle))
			return true;
	return false;
}

struct collector {
	struct ckpt_emitter em; /* first: the ops get &em */
	struct buf out;
	int nranges;
};

static ckpt_err col_bytes(struct ckpt_emitter *em, const void *p, size_t n)
{
	struct collector *c = (struct collector *)em;

	buf_bytes(&c->out, p, n);
	return CKPT_OK;
}

static ckpt_err col_range(struct ckpt_emitter *em, int fd, uint64_t pos,
			  uint64_t len)
{
	struct collector *c = (struct collector *)em;
	(void)fd;
	(void)pos;
	(void)len;

	c->nranges++;
	return CKPT_ERR_IO;
}

static ckpt_err col_entry(struct ckpt_emitter *em, const struct entry *e,
			  uint64_t off, uint64_t len)
{
	struct collector *c = (struct collector *)em;
	const struct tt *t = (const struct tt *)(const void *)e;

	assert_true(off + len <= t->size);
	assert_true(len > 0);
	buf_bytes(&c->out, t->data + off, (size_t)len);
	return CKPT_OK;
}

static const struct ckpt_emit_ops col_ops = {
	.bytes = col_bytes,
	.range = col_range,
	.entry = col_entry,
};

/* A snapshot of the n tensors t (own metadata meta[nmeta] if own). */
static struct ckpt_snapshot snap_of(struct fake *fk, struct tt *t, size_t n)
{
	memset(fk, 0, sizeof(*fk));
	fk->t = t;
	fk->n = n;
	return (struct ckpt_snapshot){
		.count = n,
		.param = fake_param,
		.read = fake_read,
		.warn = fake_warn,
		.warn_ctx = fk,
		.ctx = fk,
	};
}

/* Encodes s into out; the result. */
static ckpt_err encode(const struct ckpt_snapshot *s, struct buf *out,
		       struct ckpt_error *err)
{
	struct collector c = {.em = {.ops = &col_ops}};
	ckpt_err r;

	memset(err, 0, sizeof(*err));
	assert_non_null(ckpt_format_safetensors.encode);
	r = ckpt_format_safetensors.encode(s, &c.em, err);
	assert_int_equal(c.nranges, 0);
	*out = c.out;
	return r;
}

static void encode_ok(const struct ckpt_snapshot *s, struct buf *out)
{
	struct ckpt_error err;
	ckpt_err r = encode(s, out, &err);

	if (r)
		print_error("encode: %s\n", err.msg);
	assert_int_equal(r, CKPT_OK);
}

/* The file HF writes: header json padded, then the data pieces. */
static void expect_file(struct buf *b, const char *json)
{
	mk(b, json, true, NULL, 0);
}

static void expect_data(struct buf *b, const struct tt *t)
{
	if (t->size)
		buf_bytes(b, t->data, t->size);
}

static void assert_same(const struct buf *got, const struct buf *want)
{
	if (got->len != want->len || memcmp(got->p, want->p, want->len) != 0) {
		print_error("got  %zu: %.*s\nwant %zu: %.*s\n", got->len,
			    got->len > 8 ? (int)got->len - 8 : 0, got->p + 8,
			    want->len, want->len > 8 ? (int)want->len - 8 : 0,
			    want->p + 8);
	}
	assert_int_equal(got->len, want->len);
	assert_memory_equal(got->p, want->p, want->len);
}

static void test_encode_worked_example(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"global_step", 0, CKPT_DT_INT32, 1, {1}, d + 24, 4, 0, 0},
		{"fc.weight", 0, CKPT_DT_FLOAT32, 2, {2, 2}, d + 8, 16, 0, 0},
		{"scratch", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, false, true},
		{"fc.bias", 0, CKPT_DT_FLOAT32, 1, {2}, d, 8, 0, 0},
	};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 4);
	struct buf got, want = {0};
	struct ckpt_file *f;
	(void)state;

	encode_ok(&s, &got);
	mk(&want, worked_json, true, d, 28);
	assert_int_equal(want.len, 260);
	assert_same(&got, &want);
	assert_int_equal(fk.nwarn, 0);
	assert_int_equal(fk.nread, 0); /* no checksum: no reads */
	f = open_ok(&got, NULL);
	check_worked(f, d);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);
}

static void test_encode_empty(void **state)
{
	static const uint8_t empty[16] = {
		8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
	const uint8_t *d = data64();
	struct tt t[] = {
		{"gone", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, false, true},
	};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 0);
	struct buf got;
	struct ckpt_file *f;
	(void)state;

	encode_ok(&s, &got);
	assert_int_equal(got.len, 16);
	assert_memory_equal(got.p, empty, 16);
	buf_free(&got);
	/* all skipped: the same */
	s = snap_of(&fk, t, 1);
	encode_ok(&s, &got);
	assert_int_equal(got.len, 16);
	assert_memory_equal(got.p, empty, 16);
	f = open_ok(&got, NULL);
	assert_int_equal(ckpt_count(f), 0);
	ckpt_close(f);
	buf_free(&got);
	/* no tensors: MindSpore calls save_file({}) without metadata, also
	 * when a checksum is asked for or the tree has metadata of its own */
	s.checksum = true;
	encode_ok(&s, &got);
	assert_int_equal(got.len, 16);
	assert_memory_equal(got.p, empty, 16);
	buf_free(&got);
	s.checksum = false;
	s.own_meta = s.has_meta = true;
	encode_ok(&s, &got);
	assert_int_equal(got.len, 16);
	assert_memory_equal(got.p, empty, 16);
	buf_free(&got);
}

/* The 13 dtypes MindSpore reads, named against the write order. */
static void test_encode_dtype_order(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"a", 0, CKPT_DT_UINT64, 1, {1}, d, 8, 0, 0},
		{"b", 0, CKPT_DT_INT64, 1, {1}, d + 1, 8, 0, 0},
		{"c", 0, CKPT_DT_FLOAT64, 1, {1}, d + 2, 8, 0, 0},
		{"d", 0, CKPT_DT_FLOAT32, 1, {1}, d + 3, 4, 0, 0},
		{"e", 0, CKPT_DT_UINT32, 1, {1}, d + 4, 4, 0, 0},
		{"f", 0, CKPT_DT_INT32, 1, {1}, d + 5, 4, 0, 0},
		{"g", 0, CKPT_DT_BFLOAT16, 1, {1}, d + 6, 2, 0, 0},
		{"h", 0, CKPT_DT_FLOAT16, 1, {1}, d + 7, 2, 0, 0},
		{"i", 0, CKPT_DT_UINT16, 1, {1}, d + 8, 2, 0, 0},
		{"j", 0, CKPT_DT_INT16, 1, {1}, d + 9, 2, 0, 0},
		{"k", 0, CKPT_DT_INT8, 1, {1}, d + 10, 1, 0, 0},
		{"l", 0, CKPT_DT_UINT8, 1, {1}, d + 11, 1, 0, 0},
		{"m", 0, CKPT_DT_BOOL, 1, {1}, d + 12, 1, 0, 0},
	};
	static const char *const st[] = {"U64", "I64",	"F64", "F32", "U32",
					 "I32", "BF16", "F16", "U16", "I16",
					 "I8",	"U8",	"BOOL"};
	struct tt rev[13];
	struct fake fk;
	struct ckpt_snapshot s;
	struct buf got, want = {0};
	char json[2048];
	size_t n = 0;
	uint64_t at = 0;
	struct ckpt_file *f;
	(void)state;

	/* the names the other way round: m is the U64, a the BOOL */
	for (size_t i = 0; i < 13; i++) {
		rev[i] = t[12 - i];
		rev[i].name = t[i].name;
	}
	n += (size_t)snprintf(json, sizeof(json),
			      "{\"__metadata__\":{"
			      "\"format\":\"ms\"}");
	for (size_t i = 0; i < 13; i++) {
		n += (size_t)snprintf(json + n, sizeof(json) - n,
				      ",\"%s\":{\"dtype\":\"%s\",\"shape\":[1],"
				      "\"data_offsets\":[%llu,%llu]}",
				      t[12 - i].name, st[i],
				      (unsigned long long)at,
				      (unsigned long long)(at + t[i].size));
		at += t[i].size;
	}
	snprintf(json + n, sizeof(json) - n, "}");
	expect_file(&want, json);
	for (size_t i = 0; i < 13; i++)
		expect_data(&want, &t[i]);
	s = snap_of(&fk, rev, 13);
	encode_ok(&s, &got);
	assert_same(&got, &want);
	assert_int_equal(fk.nwarn, 0);
	f = open_ok(&got, NULL);
	for (size_t i = 0; i < 13; i++)
		assert_int_equal(ckpt_param_at(f, i)->tensor.dtype, t[i].dt);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);

	/* any input order gives the same bytes */
	for (size_t i = 0; i < 13; i++)
		rev[i] = t[(i * 5) % 13];
	s = snap_of(&fk, rev, 13);
	encode_ok(&s, &got);
	buf_free(&want);
	{
		/* the same names as t: write order is a..m */
		n = (size_t)snprintf(json, sizeof(json),
				     "{\"__metadata__\":{\"format\":\"ms\"}");
		at = 0;
		for (size_t i = 0; i < 13; i++) {
			n += (size_t)snprintf(
				json + n, sizeof(json) - n,
				",\"%s\":{\"dtype\":\"%s\",\"shape\":[1],"
				"\"data_offsets\":[%llu,%llu]}",
				t[i].name, st[i], (unsigned long long)at,
				(unsigned long long)(at + t[i].size));
			at += t[i].size;
		}
		snprintf(json + n, sizeof(json) - n, "}");
		expect_file(&want, json);
		for (size_t i = 0; i < 13; i++)
			expect_data(&want, &t[i]);
		assert_same(&got, &want);
	}
	buf_free(&got);
	buf_free(&want);
}

/* The dtypes outside MindSpore's 13: in HF's enum order, with warnings. */
static void test_encode_other_dtypes(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"a", 0, CKPT_DT_F4, 1, {2}, d, 1, 0, 0},
		{"b", 0, CKPT_DT_F6_E3M2, 1, {4}, d, 3, 0, 0},
		{"c", 0, CKPT_DT_F6_E2M3, 1, {4}, d, 3, 0, 0},
		{"d", 0, CKPT_DT_FLOAT8E5M2, 1, {1}, d, 1, 0, 0},
		{"e", 0, CKPT_DT_F8_E5M2FNUZ, 1, {1}, d, 1, 0, 0},
		{"f", 0, CKPT_DT_F8_E4M3FNUZ, 1, {1}, d, 1, 0, 0},
		{"g", 0, CKPT_DT_FLOAT8E4M3FN, 1, {1}, d, 1, 0, 0},
		{"h", 0, CKPT_DT_F8_E8M0, 1, {1}, d, 1, 0, 0},
		{"i", 0, CKPT_DT_COMPLEX64, 1, {1}, d, 8, 0, 0},
		{"j", 0, CKPT_DT_INT8, 1, {1}, d, 1, 0, 0},
		{"k", 0, CKPT_DT_UINT8, 1, {1}, d, 1, 0, 0},
		{"l", 0, CKPT_DT_INT16, 1, {1}, d, 2, 0, 0},
		{"m", 0, CKPT_DT_FLOAT64, 1, {1}, d, 8, 0, 0},
		{"n", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, 0, 0},
		{"o", 0, CKPT_DT_BOOL, 1, {1}, d, 1, 0, 0},
	};
	/* HF: BOOL < F4 < F6_E2M3 < F6_E3M2 < U8 < I8 < F8_E5M2 < F8_E4M3 <
	 * F8_E8M0 < F8_E4M3FNUZ < F8_E5M2FNUZ < I16 < U16 < F16 < BF16 <
	 * I32 < U32 < F32 < C64 < F64 < I64 < U64, written descending */
	static const char order[] = "minlefhgdjkbcao";
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 15);
	struct buf got;
	struct ckpt_file *f;
	(void)state;

	encode_ok(&s, &got);
	f = open_ok(&got, NULL);
	assert_int_equal(ckpt_count(f), 15);
	for (size_t i = 0; i < 15; i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		assert_int_equal(p->name[0], order[i]);
		assert_int_equal(p->tensor.dtype, t[order[i] - 'a'].dt);
	}
	ckpt_close(f);
	buf_free(&got);
	/* the nine MindSpore cannot load, each named */
	assert_int_equal(fk.nwarn, 9);
	assert_true(warned(&fk, "'a' is F4"));
	assert_true(warned(&fk, "'i' is Complex64"));
	assert_true(warned(&fk, "'g' is Float8E4M3FN"));
	assert_false(warned(&fk, "'j'"));
}

static void test_encode_name_order(void **state)
{
	const uint8_t *d = data64();
	/* byte order: "B" < "a" < "a.b" < "a0" < "ab" < "b" < "\xc3\xa9";
	 * then the I32 "A" (a lower dtype rank than F32) */
	struct tt t[] = {
		{"b", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, 0, 0},
		{"\xc3\xa9", 0, CKPT_DT_FLOAT32, 1, {1}, d + 4, 4, 0, 0},
		{"a0", 0, CKPT_DT_FLOAT32, 1, {1}, d + 8, 4, 0, 0},
		{"A", 0, CKPT_DT_INT32, 1, {1}, d + 12, 4, 0, 0},
		{"a", 0, CKPT_DT_FLOAT32, 1, {1}, d + 16, 4, 0, 0},
		{"ab", 0, CKPT_DT_FLOAT32, 1, {1}, d + 20, 4, 0, 0},
		{"B", 0, CKPT_DT_FLOAT32, 1, {1}, d + 24, 4, 0, 0},
		{"a.b", 0, CKPT_DT_FLOAT32, 1, {1}, d + 28, 4, 0, 0},
	};
	static const size_t order[] = {6, 4, 7, 2, 5, 0, 1, 3};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 8);
	struct buf got, want = {0};
	char json[2048];
	size_t n;
	(void)state;

	n = (size_t)snprintf(json, sizeof(json),
			     "{\"__metadata__\":{\"format\":\"ms\"}");
	for (size_t i = 0; i < 8; i++) {
		const struct tt *x = &t[order[i]];
		n += (size_t)snprintf(json + n, sizeof(json) - n,
				      ",\"%s\":{\"dtype\":\"%s\",\"shape\":[1],"
				      "\"data_offsets\":[%zu,%zu]}",
				      x->name, i == 7 ? "I32" : "F32", 4 * i,
				      4 * i + 4);
	}
	snprintf(json + n, sizeof(json) - n, "}");
	expect_file(&want, json);
	for (size_t i = 0; i < 8; i++)
		expect_data(&want, &t[order[i]]);
	encode_ok(&s, &got);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);
}

static void test_encode_escaping(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"f/\xc3\xa9\xe2\x82\xac",
		 0,
		 CKPT_DT_UINT8,
		 1,
		 {1},
		 d + 5,
		 1,
		 0,
		 0},
		{"a\"q", 0, CKPT_DT_UINT8, 1, {1}, d, 1, 0, 0},
		{"b\\s", 0, CKPT_DT_UINT8, 1, {1}, d + 1, 1, 0, 0},
		{"c\x1f", 0, CKPT_DT_UINT8, 1, {1}, d + 2, 1, 0, 0},
		{"d\x01\x7f\x1b", 0, CKPT_DT_UINT8, 1, {1}, d + 3, 1, 0, 0},
		{"e\b\t\n\f\r", 0, CKPT_DT_UINT8, 1, {1}, d + 4, 1, 0, 0},
	};
	static const char json[] =
		"{\"__metadata__\":{\"format\":\"ms\"},"
		"\"a\\\"q\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[0,1]},"
		"\"b\\\\s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[1,2]},"
		"\"c\\u001f\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
		"[2,3]},"
		"\"d\\u0001\x7f\\u001b\":{\"dtype\":\"U8\",\"shape\":[1],"
		"\"data_offsets\":[3,4]},"
		"\"e\\b\\t\\n\\f\\r\":{\"dtype\":\"U8\",\"shape\":[1],"
		"\"data_offsets\":[4,5]},"
		"\"f/\xc3\xa9\xe2\x82\xac\":{\"dtype\":\"U8\",\"shape\":[1],"
		"\"data_offsets\":[5,6]}}";
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 6);
	struct buf got, want = {0};
	struct ckpt_file *f;
	(void)state;

	encode_ok(&s, &got);
	expect_file(&want, json);
	buf_bytes(&want, d, 6);
	assert_same(&got, &want);
	/* read back: the names as they were */
	f = open_ok(&got, NULL);
	assert_int_equal(ckpt_count(f), 6);
	for (size_t i = 0; i < 6; i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		const struct tt *x = &t[(i + 1) % 6];
		assert_int_equal(p->name_len, strlen(x->name));
		assert_memory_equal(p->name, x->name, p->name_len);
		assert_int_equal(p->tensor.size, 1);
	}
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);
}

/* Int4 tensors are written as I8, each with its marker. */
static void test_encode_int4(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"z", 0, CKPT_DT_INT4, 1, {3}, d, 3, 0, 0},
		{"w", 0, CKPT_DT_FLOAT32, 1, {1}, d + 3, 4, 0, 0},
		{"m", 0, CKPT_DT_INT4, 2, {2, 2}, d + 7, 4, 0, 0},
		{"n", 0, CKPT_DT_INT8, 1, {1}, d + 11, 1, 0, 0},
	};
	static const char json[] =
		"{\"__metadata__\":{\"format\":\"ms\",\"m\":\"Int4\",\"z\":"
		"\"Int4\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
		"\"data_offsets\":[0,4]},\"m\":{\"dtype\":\"I8\",\"shape\":"
		"[2,2],\"data_offsets\":[4,8]},\"n\":{\"dtype\":\"I8\",\"shape\":"
		"[1],\"data_offsets\":[8,9]},\"z\":{\"dtype\":\"I8\",\"shape\":"
		"[3],\"data_offsets\":[9,12]}}";
	static const int64_t d1[] = {1}, d3[] = {3}, d22[] = {2, 2};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 4);
	struct buf got, want = {0};
	struct ckpt_file *f;
	(void)state;

	encode_ok(&s, &got);
	expect_file(&want, json);
	expect_data(&want, &t[1]);
	expect_data(&want, &t[2]);
	expect_data(&want, &t[3]);
	expect_data(&want, &t[0]);
	assert_same(&got, &want);
	assert_int_equal(fk.nwarn, 0);
	f = open_ok(&got, NULL);
	check_param(f, 0, "w", CKPT_DT_FLOAT32, d1, 1, d + 3, 4);
	check_param(f, 1, "m", CKPT_DT_INT4, d22, 2, d + 7, 4);
	check_param(f, 2, "n", CKPT_DT_INT8, d1, 1, d + 11, 1);
	check_param(f, 3, "z", CKPT_DT_INT4, d3, 1, d, 3);
	assert_true(ckpt_meta_at(f, 1)->marker);
	assert_true(ckpt_meta_at(f, 2)->marker);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);
}

/* CRC of the fake tensors as MindSpore computes it (the quirk included):
 * sorted names, the name, then bytes(array). */
static uint32_t tt_crc(const struct tt *t, size_t n)
{
	struct crc_t c[16];

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		bool integer = t[i].dt != CKPT_DT_BOOL &&
			       t[i].dt <= CKPT_DT_UINT64;
		c[i] = (struct crc_t){.name = t[i].name,
				      .scalar = t[i].ndims == 0,
				      .len = (size_t)t[i].size,
				      .integer = integer};
		assert_true(t[i].size <= 8);
		memcpy(c[i].bytes, t[i].data, (size_t)t[i].size);
		for (size_t k = t[i].size; k-- > 0;)
			c[i].value = c[i].value << 8 | t[i].data[k];
	}
	return hand_crc(c, n, true);
}

/* A tree's own metadata: kept in order, crc_num recomputed where it was. */
static void test_encode_own_metadata(void **state)
{
	static const uint8_t five[8] = {5};
	const uint8_t *d = data64();
	struct tt t[] = {
		{"w", 0, CKPT_DT_FLOAT32, 1, {2}, d, 8, 0, 0},
		{"step", 0, CKPT_DT_INT64, 0, {0}, five, 8, 0, 0},
		{"q", 0, CKPT_DT_INT4, 1, {2}, d + 8, 2, 0, 0},
	};
	const struct ckpt_meta_item meta[] = {
		{"zeta", "1", false, false},
		{"crc_num", "12345", false, false},
		{"alpha", "x\"y", false, false},
		{"n", "[1,{\"a\":2}]", true, false},
		{"q", "Int4", false, true},
		{"format", "ms", false, false},
	};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 3);
	struct buf got, want = {0};
	char json[1024];
	uint32_t crc = tt_crc(t, 3);
	struct ckpt_file *f;
	(void)state;

	s.meta = meta;
	s.nmeta = 6;
	s.own_meta = s.has_meta = true;
	s.checksum = true;
	encode_ok(&s, &got);
	snprintf(json, sizeof(json),
		 "{\"__metadata__\":{\"zeta\":\"1\",\"crc_num\":\"%u\","
		 "\"alpha\":\"x\\\"y\",\"n\":[1,{\"a\":2}],\"q\":\"Int4\","
		 "\"format\":\"ms\"},\"step\":{\"dtype\":\"I64\",\"shape\":[],"
		 "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":"
		 "[2],\"data_offsets\":[8,16]},\"q\":{\"dtype\":\"I8\","
		 "\"shape\":[2],\"data_offsets\":[16,18]}}",
		 crc);
	expect_file(&want, json);
	expect_data(&want, &t[1]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[2]);
	assert_same(&got, &want);
	assert_int_equal(fk.nread, 18); /* every byte once for the CRC */
	/* the file's CRC verifies */
	f = open_ok(&got, NULL);
	assert_true(ckpt_stats(f)->crc_checked);
	assert_int_equal(ckpt_stats(f)->crc_computed, crc);
	assert_int_equal(ckpt_meta_count(f), 6);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);

	/* no checksum asked for: a stale crc_num is dropped */
	s.checksum = false;
	encode_ok(&s, &got);
	expect_file(
		&want,
		"{\"__metadata__\":{\"zeta\":\"1\",\"alpha\":\"x\\\"y\","
		"\"n\":[1,{\"a\":2}],\"q\":\"Int4\",\"format\":\"ms\"},"
		"\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":"
		"[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
		"\"data_offsets\":[8,16]},\"q\":{\"dtype\":\"I8\",\"shape\":"
		"[2],\"data_offsets\":[16,18]}}");
	expect_data(&want, &t[1]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[2]);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);

	/* no metadata of its own, a checksum: format, markers, crc_num */
	s.own_meta = s.has_meta = false;
	s.checksum = true;
	encode_ok(&s, &got);
	snprintf(json, sizeof(json),
		 "{\"__metadata__\":{\"format\":\"ms\",\"q\":\"Int4\","
		 "\"crc_num\":\"%u\"},\"step\":{\"dtype\":\"I64\",\"shape\":[],"
		 "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":"
		 "[2],\"data_offsets\":[8,16]},\"q\":{\"dtype\":\"I8\","
		 "\"shape\":[2],\"data_offsets\":[16,18]}}",
		 crc);
	expect_file(&want, json);
	expect_data(&want, &t[1]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[2]);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);

	/* own metadata without crc_num, a checksum: appended last */
	s.own_meta = s.has_meta = true;
	s.meta = meta + 2;
	s.nmeta = 1;
	encode_ok(&s, &got);
	snprintf(json, sizeof(json),
		 "{\"__metadata__\":{\"alpha\":\"x\\\"y\",\"q\":\"Int4\","
		 "\"crc_num\":\"%u\"},\"step\":{\"dtype\":\"I64\",\"shape\":[],"
		 "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":"
		 "[2],\"data_offsets\":[8,16]},\"q\":{\"dtype\":\"I8\","
		 "\"shape\":[2],\"data_offsets\":[16,18]}}",
		 crc);
	expect_file(&want, json);
	expect_data(&want, &t[1]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[2]);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);

	/* the file had no metadata and nothing needs it: none */
	s.own_meta = true;
	s.has_meta = false;
	s.checksum = false;
	s.nmeta = 0;
	t[2].dt = CKPT_DT_INT8;
	encode_ok(&s, &got);
	expect_file(&want, "{\"step\":{\"dtype\":\"I64\",\"shape\":[],"
			   "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\","
			   "\"shape\":[2],\"data_offsets\":[8,16]},\"q\":{"
			   "\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":"
			   "[16,18]}}");
	expect_data(&want, &t[1]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[2]);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);
}

/* Markers whose tensor was renamed, retyped or removed are dropped; the
 * renamed one gets a new marker at the end. */
static void test_encode_stale_markers(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"new", 0, CKPT_DT_INT4, 1, {1}, d, 1, 0, 0},	/* was old */
		{"r", 0, CKPT_DT_INT8, 1, {1}, d + 1, 1, 0, 0}, /* was Int4 */
		{"keep", 0, CKPT_DT_INT4, 1, {1}, d + 2, 1, 0, 0},
		{"gone", 0, CKPT_DT_INT4, 1, {1}, d + 3, 1, false, true},
	};
	const struct ckpt_meta_item meta[] = {
		{"format", "ms", false, false}, {"old", "Int4", false, true},
		{"r", "Int4", false, true},	{"keep", "Int4", false, true},
		{"gone", "Int4", false, true},	{"user", "v", false, false},
		{"w", "Int4", false, false}, /* no tensor w: plain metadata */
	};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 4);
	struct buf got, want = {0};
	struct ckpt_file *f;
	(void)state;

	s.meta = meta;
	s.nmeta = 7;
	s.own_meta = s.has_meta = true;
	encode_ok(&s, &got);
	expect_file(&want,
		    "{\"__metadata__\":{\"format\":\"ms\",\"keep\":\"Int4\","
		    "\"user\":\"v\",\"w\":\"Int4\",\"new\":\"Int4\"},\"keep\":"
		    "{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		    "\"new\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":"
		    "[1,2]},\"r\":{\"dtype\":\"I8\",\"shape\":[1],"
		    "\"data_offsets\":[2,3]}}");
	expect_data(&want, &t[2]);
	expect_data(&want, &t[0]);
	expect_data(&want, &t[1]);
	assert_same(&got, &want);
	/* r's marker is gone with it: no "named like a key" warning */
	assert_int_equal(fk.nwarn, 0);
	f = open_ok(&got, NULL);
	assert_int_equal(ckpt_param_at(f, 0)->tensor.dtype, CKPT_DT_INT4);
	assert_int_equal(ckpt_param_at(f, 1)->tensor.dtype, CKPT_DT_INT4);
	assert_int_equal(ckpt_param_at(f, 2)->tensor.dtype, CKPT_DT_INT8);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&want);
}

static void test_encode_unrepresentable(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"w", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, 0, 0},
		{"themap", 0, CKPT_DT_FLOAT32, 0, {0}, d, 0, true, false},
		{"text", 0, CKPT_DT_STR, 1, {1}, d, 4, 0, 0},
		{"c128", 0, CKPT_DT_COMPLEX128, 1, {1}, d, 16, 0, 0},
		{"hf8", 0, CKPT_DT_HIFLOAT8, 1, {1}, d, 1, 0, 0},
	};
	struct fake fk;
	struct ckpt_snapshot s;
	struct buf got, want = {0};
	struct ckpt_error err;
	(void)state;

	/* one of them: an error naming it */
	for (size_t k = 1; k < 5; k++) {
		struct tt two[2] = {t[0], t[k]};
		char q[32];

		s = snap_of(&fk, two, 2);
		assert_int_equal(encode(&s, &got, &err), CKPT_ERR_UNSUPPORTED);
		snprintf(q, sizeof(q), "'%s'", t[k].name);
		assert_non_null(strstr(err.msg, q));
		assert_null(strstr(err.msg, "'w'"));
		buf_free(&got);
	}
	/* all of them: all named */
	s = snap_of(&fk, t, 5);
	assert_int_equal(encode(&s, &got, &err), CKPT_ERR_UNSUPPORTED);
	assert_int_equal(err.code, CKPT_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "4 parameters"));
	assert_non_null(strstr(err.msg, "'themap'"));
	assert_non_null(strstr(err.msg, "'text'"));
	assert_non_null(strstr(err.msg, "'c128'"));
	assert_non_null(strstr(err.msg, "'hf8'"));
	assert_int_equal(got.len, 0); /* nothing emitted */
	buf_free(&got);

	/* skip_unrepresentable: left out, a warning each */
	s.skip_unrepresentable = true;
	encode_ok(&s, &got);
	expect_file(&want, "{\"__metadata__\":{\"format\":\"ms\"},\"w\":{"
			   "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
			   "[0,4]}}");
	expect_data(&want, &t[0]);
	assert_same(&got, &want);
	assert_int_equal(fk.nwarn, 4);
	assert_true(warned(&fk, "'themap'"));
	assert_true(warned(&fk, "'text'"));
	assert_true(warned(&fk, "'c128'"));
	assert_true(warned(&fk, "'hf8'"));
	buf_free(&got);
	buf_free(&want);
	/* without a warn callback: the same bytes */
	s.warn = NULL;
	encode_ok(&s, &got);
	expect_file(&want, "{\"__metadata__\":{\"format\":\"ms\"},\"w\":{"
			   "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
			   "[0,4]}}");
	expect_data(&want, &t[0]);
	assert_same(&got, &want);
	buf_free(&got);
	buf_free(&want);
}

/* Names MindSpore's loader trips on (a metadata key): written, warned. */
static void test_encode_name_is_a_key(void **state)
{
	const uint8_t *d = data64();
	struct tt t[] = {
		{"format", 0, CKPT_DT_FLOAT32, 1, {1}, d, 4, 0, 0},
	};
	struct fake fk;
	struct ckpt_snapshot s = snap_of(&fk, t, 1);
	struct buf got, want = {0};
	(void)state;

	encode_ok(&s, &got);
	expect_file(&want, "{\"__metadata__\":{\"format\":\"ms\"},\"format\":"
			   "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
			   "[0,4]}}");
	expect_data(&want, &t[0]);
	assert_same(&got, &want);
	assert_true(warned(&fk, "format"));
	buf_free(&got);
	buf_free(&want);
	/* a key of the tree's own metadata */
	{
		const struct ckpt_meta_item meta[] = {
			{"format", "pt", false, false},
		};
		t[0].name = "w";
		s = snap_of(&fk, t, 1);
		s.meta = meta;
		s.nmeta = 1;
		s.own_meta = s.has_meta = true;
		encode_ok(&s, &got);
		assert_int_equal(fk.nwarn, 0);
		buf_free(&got);
		t[0].name = "format";
		s = snap_of(&fk, t, 1);
		s.meta = meta;
		s.nmeta = 1;
		s.own_meta = s.has_meta = true;
		encode_ok(&s, &got);
		assert_int_equal(fk.nwarn, 1);
		assert_true(warned(&fk, "'format' is named like a key"));
		buf_free(&got);
	}
}

/* ---- encode of opened files: the real fixtures byte for byte ------------ */

static ckpt_err file_param(const struct ckpt_snapshot *s, size_t i,
			   struct ckpt_out_param *p, struct ckpt_error *err)
{
	const struct ckpt_file *f = s->ctx;
	const struct ckpt_param *q = ckpt_param_at(f, i);
	(void)err;

	memset(p, 0, sizeof(*p));
	p->untouched = true;
	p->name = q->name;
	p->name_len = q->name_len;
	p->fname = q->fname;
	p->dtype = q->tensor.dtype;
	p->ndims = q->tensor.ndims;
	memcpy(p->dims, q->tensor.dims, q->tensor.ndims * sizeof(int64_t));
	p->size = q->tensor.size;
	p->entry = (const struct entry *)(const void *)q;
	p->orig = q;
	p->orig_fd = ckpt_fd(f);
	return CKPT_OK;
}

static ckpt_err file_read(const struct ckpt_snapshot *s, const struct entry *e,
			  uint64_t off, void *buf, size_t len,
			  struct ckpt_error *err)
{
	const struct ckpt_param *q = (const struct ckpt_param *)(const void *)e;
	size_t done = 0;
	ckpt_err r =
		ckpt_tensor_read(s->ctx, &q->tensor, buf, len, off, &done, err);

	assert_int_equal(r, CKPT_OK);
	assert_int_equal(done, len);
	return r;
}

struct file_collector {
	struct ckpt_emitter em;
	const struct ckpt_file *f;
	struct buf out;
};

static ckpt_err fcol_bytes(struct ckpt_emitter *em, const void *p, size_t n)
{
	buf_bytes(&((struct file_collector *)em)->out, p, n);
	return CKPT_OK;
}

static ckpt_err fcol_entry(struct ckpt_emitter *em, const struct entry *e,
			   uint64_t off, uint64_t len)
{
	struct file_collector *c = (struct file_collector *)em;
	const struct ckpt_param *q = (const struct ckpt_param *)(const void *)e;
	uint8_t *b = malloc(len);
	size_t done = 0;

	assert_non_null(b);
	assert_int_equal(ckpt_tensor_read(c->f, &q->tensor, b, len, off, &done,
					  NULL),
			 CKPT_OK);
	assert_int_equal(done, len);
	buf_bytes(&c->out, b, len);
	free(b);
	return CKPT_OK;
}

static const struct ckpt_emit_ops fcol_ops = {
	.bytes = fcol_bytes,
	.range = col_range,
	.entry = fcol_entry,
};

/* The encode of f as it is (its metadata its own). */
static void encode_file(const struct ckpt_file *f, bool checksum,
			struct buf *out)
{
	struct file_collector c = {.em = {.ops = &fcol_ops}, .f = f};
	struct ckpt_snapshot s = {
		.count = ckpt_count(f),
		.checksum = checksum,
		.param = file_param,
		.read = file_read,
		.meta = ckpt_meta_count(f) ? ckpt_meta_at(f, 0) : NULL,
		.nmeta = ckpt_meta_count(f),
		.own_meta = true,
		.has_meta = ckpt_has_metadata(f),
		.ctx = f,
	};
	struct ckpt_error err = {0};
	ckpt_err r = ckpt_format_safetensors.encode(&s, &c.em, &err);

	if (r)
		print_error("encode: %s\n", err.msg);
	assert_int_equal(r, CKPT_OK);
	*out = c.out;
}

static int check_fixture_dir(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp))) {
		char path[4096];
		struct buf orig = {0}, got;
		struct ckpt_file *f;
		size_t len = strlen(de->d_name);

		if (len < 12 || strcmp(de->d_name + len - 12, ".safetensors") ||
		    strncmp(de->d_name, "NEG_", 4) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_true(buf_read_file(&orig, path));
		f = open_ok(&orig, NULL);
		assert_true(ckpt_count(f) > 0);
		encode_file(f, false, &got);
		if (got.len != orig.len || memcmp(got.p, orig.p, orig.len))
			print_error("%s differs\n", path);
		assert_same(&got, &orig);
		ckpt_close(f);
		buf_free(&got);
		buf_free(&orig);
		n++;
	}
	closedir(dp);
	return n;
}

static void test_encode_fixtures(void **state)
{
	char dir[4096];
	const char *slash = strrchr(__FILE__, '/');
	int n;
	(void)state;

	assert_non_null(slash);
	snprintf(dir, sizeof(dir), "%.*s/../fixtures/safetensors",
		 (int)(slash - __FILE__), __FILE__);
	n = check_fixture_dir(dir);
	strncat(dir, "/fluxml_sharded", sizeof(dir) - strlen(dir) - 1);
	n += check_fixture_dir(dir);
	assert_int_equal(n, 9);
}

/* A file with a crc_num, encoded again: the same bytes. */
static void test_encode_crc_file_again(void **state)
{
	char meta[128];
	struct buf b = {0}, got;
	struct ckpt_file *f;
	(void)state;

	snprintf(meta, sizeof(meta), "\"format\":\"ms\",\"crc_num\":\"%u\"",
		 hand_crc(crc_tensors, NCRC, true));
	/* in the serializer's order (dtype rank, name) */
	{
		static const size_t order[] = {1, 2, 0, 8, 3, 7, 5, 4, 6};
		struct crc_t t[NCRC];
		for (size_t i = 0; i < NCRC; i++)
			t[i] = crc_tensors[order[i]];
		mk_crc_file(&b, t, NCRC, meta);
	}
	f = open_ok(&b, NULL);
	encode_file(f, true, &got);
	assert_same(&got, &b);
	ckpt_close(f);
	buf_free(&got);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_padded),
		cmocka_unit_test(test_valid_unpadded_and_whitespace),
		cmocka_unit_test(test_valid_any_key_order),
		cmocka_unit_test(test_valid_zero_size_and_scalars),
		cmocka_unit_test(test_valid_metadata_places),
		cmocka_unit_test(test_valid_metadata_values),
		cmocka_unit_test(test_valid_int4_markers),
		cmocka_unit_test(test_valid_all_dtypes),
		cmocka_unit_test(test_refused_lengths),
		cmocka_unit_test(test_refused_the_fixture),
		cmocka_unit_test(test_refused_json),
		cmocka_unit_test(test_refused_entries),
		cmocka_unit_test(test_refused_layout),
		cmocka_unit_test(test_crc_match),
		cmocka_unit_test(test_crc_mismatch),
		cmocka_unit_test(test_crc_negative_scalar),
		cmocka_unit_test(test_encode_worked_example),
		cmocka_unit_test(test_encode_empty),
		cmocka_unit_test(test_encode_dtype_order),
		cmocka_unit_test(test_encode_other_dtypes),
		cmocka_unit_test(test_encode_name_order),
		cmocka_unit_test(test_encode_escaping),
		cmocka_unit_test(test_encode_int4),
		cmocka_unit_test(test_encode_own_metadata),
		cmocka_unit_test(test_encode_stale_markers),
		cmocka_unit_test(test_encode_unrepresentable),
		cmocka_unit_test(test_encode_name_is_a_key),
		cmocka_unit_test(test_encode_fixtures),
		cmocka_unit_test(test_encode_crc_file_again),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
