/*
 * test_read.c - ckpt_tensor_read and ckpt_tensor_extent_at on hand-built
 * multi-slice tensors, and on every real fixture.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"
#include "ckpt.h"

static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 37 + 11 + (i >> 8));
}

static struct ckpt_file *open_ok(const struct buf *b)
{
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	ckpt_err rc = buf_open(b, NULL, &f, &err, NULL);

	if (rc)
		print_error("unexpected error: %s\n", err.msg);
	assert_int_equal(rc, CKPT_OK);
	return f;
}

/* Checks every read of [off, off+len) for off, len in 0..size+2 against
 * want; bytes past the returned count must stay untouched. */
static void check_all_reads(const struct ckpt_file *f,
			    const struct ckpt_tensor *t, const uint8_t *want,
			    size_t size)
{
	uint8_t *got = malloc(size + 16);

	assert_non_null(got);
	assert_int_equal(t->size, size);
	for (uint64_t off = 0; off <= size + 2; off++)
		for (size_t len = 0; len <= size + 2; len++) {
			struct ckpt_error err = {0};
			size_t exp = off >= size	? 0
				     : size - off < len ? size - off
							: len;
			ssize_t n;

			memset(got, 0xA5, size + 16);
			n = tensor_read_n(f, t, got, len, off, &err);
			assert_int_equal(n, (ssize_t)exp);
			if (exp)
				assert_memory_equal(got, want + off, exp);
			for (size_t k = exp; k < size + 16; k++)
				assert_int_equal(got[k], 0xA5);
		}
	free(got);
}

/* A 10-byte tensor in slices of 3, 0, 4 and 3 bytes. */
static void test_every_offset_and_length(void **state)
{
	static const int64_t d10[] = {10}, d6[] = {6};
	uint8_t data[64];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_tensor *t;
	(void)state;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pat(i);
	buf_record(&b, "t", d10, 1, "UInt8", data, 3);
	buf_record(&b, "t", d10, 1, "UInt8", data + 3, 0);
	buf_record(&b, "t", d10, 1, "UInt8", data + 3, 4);
	buf_record(&b, "t", d10, 1, "UInt8", data + 7, 3);
	/* Int16 [6] cut in the middle of an element (2.3+ cuts bytes) */
	buf_record(&b, "h", d6, 1, "Int16", data + 20, 5);
	buf_record(&b, "h", d6, 1, "Int16", data + 25, 7);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);

	t = &ckpt_param_at(f, 0)->tensor;
	assert_int_equal(ckpt_param_at(f, 0)->nslices, 4);
	assert_int_equal(t->nextents, 3);
	check_all_reads(f, t, data, 10);

	t = &ckpt_param_at(f, 1)->tensor;
	assert_int_equal(t->nextents, 2);
	check_all_reads(f, t, data + 20, 12);
	assert_true(oracle_check(b.p, b.len, f));
	ckpt_close(f);
	buf_free(&b);
}

static void test_read_past_end(void **state)
{
	static const int64_t d4[] = {4};
	uint8_t got[8] = {0};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_tensor *t;
	(void)state;

	buf_record(&b, "t", d4, 1, "Int8", "abcd", 4);
	f = open_ok(&b);
	t = &ckpt_param_at(f, 0)->tensor;
	assert_int_equal(tensor_read_n(f, t, got, 8, 4, NULL), 0);
	assert_int_equal(tensor_read_n(f, t, got, 8, 5, NULL), 0);
	assert_int_equal(tensor_read_n(f, t, got, 8, 1u << 31, NULL), 0);
	assert_int_equal(tensor_read_n(f, t, got, 8, UINT64_MAX, NULL), 0);
	assert_int_equal(tensor_read_n(f, t, got, 0, UINT64_MAX, NULL), 0);
	/* a huge size is clamped to what is there */
	assert_int_equal(tensor_read_n(f, t, got, SIZE_MAX, 1, NULL), 3);
	assert_memory_equal(got, "bcd", 3);
	assert_int_equal(tensor_read_n(f, t, got, SIZE_MAX, 0, NULL), 4);
	assert_memory_equal(got, "abcd", 4);
	ckpt_close(f);
	buf_free(&b);
}

static void test_extent_at(void **state)
{
	static const int64_t d10[] = {10}, d3[] = {3};
	uint8_t data[10];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_tensor *t;
	static const uint32_t want[10] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
	(void)state;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pat(i);
	buf_record(&b, "t", d10, 1, "UInt8", data, 3);
	buf_record(&b, "t", d10, 1, "UInt8", data + 3, 0);
	buf_record(&b, "t", d10, 1, "UInt8", data + 3, 4);
	buf_record(&b, "t", d10, 1, "UInt8", data + 7, 3);
	buf_record(&b, "one", d3, 1, "UInt8", data, 3);
	f = open_ok(&b);
	t = &ckpt_param_at(f, 0)->tensor;
	assert_int_equal(t->extents[0].pos, 0);
	assert_int_equal(t->extents[1].pos, 3);
	assert_int_equal(t->extents[2].pos, 7);
	for (uint64_t pos = 0; pos < 10; pos++)
		assert_int_equal(ckpt_tensor_extent_at(t, pos), want[pos]);
	t = &ckpt_param_at(f, 1)->tensor;
	assert_int_equal(t->nextents, 1);
	for (uint64_t pos = 0; pos < 3; pos++)
		assert_int_equal(ckpt_tensor_extent_at(t, pos), 0);
	ckpt_close(f);
	buf_free(&b);
}

/* Many slices of uneven sizes: extent_at agrees with a linear search and
 * single-byte and longer reads agree with the data. */
static void test_many_slices(void **state)
{
	enum {
		NS = 257
	};
	uint8_t *data;
	size_t total = 0, sizes[NS];
	int64_t d[1];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_tensor *t;
	uint8_t got[300];
	(void)state;

	for (size_t i = 0; i < NS; i++) {
		sizes[i] = (i * 7) % 13; /* some empty */
		total += sizes[i];
	}
	data = malloc(total);
	assert_non_null(data);
	for (size_t i = 0; i < total; i++)
		data[i] = pat(i);
	d[0] = (int64_t)total;
	for (size_t i = 0, off = 0; i < NS; off += sizes[i], i++)
		buf_record(&b, "many", d, 1, "Int8", data + off, sizes[i]);
	f = open_ok(&b);
	t = &ckpt_param_at(f, 0)->tensor;
	assert_int_equal(ckpt_param_at(f, 0)->nslices, NS);
	assert_int_equal(t->size, total);
	for (uint64_t pos = 0; pos < total; pos++) {
		uint32_t lin = 0;
		while (lin + 1 < t->nextents && t->extents[lin + 1].pos <= pos)
			lin++;
		assert_int_equal(ckpt_tensor_extent_at(t, pos), lin);
		assert_true(t->extents[lin].pos <= pos);
		assert_true(pos < t->extents[lin].pos + t->extents[lin].len);
	}
	for (uint64_t off = 0; off < total; off++) {
		size_t len = (off * 31) % sizeof(got);
		size_t exp = total - off < len ? total - off : len;
		assert_int_equal(tensor_read_n(f, t, got, len, off, NULL),
				 (ssize_t)exp);
		if (exp)
			assert_memory_equal(got, data + off, exp);
	}
	assert_true(oracle_check(b.p, b.len, f));
	ckpt_close(f);
	buf_free(&b);
	free(data);
}

/* BFloat16 stored as float32, long enough to be read in several chunks,
 * and sliced at odd byte positions. */
static void test_bf16_large(void **state)
{
	enum {
		NEL = 3001
	};
	static const size_t cuts[] = {0, 4097, 9103, NEL * 4};
	static const uint64_t offs[] = {0,    1,    2,	  3,	1023, 1024,
					2047, 2048, 2049, 2050, 4095, 4096,
					4097, 5999, 6000, 6001, 6002};
	static const size_t lens[] = {0,    1,	  2,	3,    2047, 2048,
				      2049, 4096, 4097, 5000, 6002, 9999};
	uint8_t *f32 = malloc(NEL * 4), *want = malloc(NEL * 2),
		*got = malloc(NEL * 2 + 8);
	int64_t d[] = {NEL};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_tensor *t;
	(void)state;

	assert_non_null(f32);
	assert_non_null(want);
	assert_non_null(got);
	for (size_t i = 0; i < NEL * 4; i++)
		f32[i] = pat(i);
	for (size_t k = 0; k < NEL * 2; k++)
		want[k] = f32[(k / 2) * 4 + 2 + k % 2];
	for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++)
		buf_record(&b, "bf", d, 1, "BFloat16", f32 + cuts[i],
			   cuts[i + 1] - cuts[i]);
	f = open_ok(&b);
	t = &ckpt_param_at(f, 0)->tensor;
	assert_true(t->bf16_from_f32);
	assert_int_equal(t->size, NEL * 2);
	assert_int_equal(t->stored, NEL * 4);
	assert_int_equal(t->nextents, 3);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			uint64_t off = offs[i];
			size_t len = lens[j];
			size_t exp = off >= NEL * 2	   ? 0
				     : NEL * 2 - off < len ? NEL * 2 - off
							   : len;
			memset(got, 0x5A, NEL * 2 + 8);
			assert_int_equal(tensor_read_n(f, t, got, len, off,
						       NULL),
					 (ssize_t)exp);
			if (exp)
				assert_memory_equal(got, want + off, exp);
			if (exp < NEL * 2 + 8)
				assert_int_equal(got[exp], 0x5A);
		}
	/* byte by byte from the end */
	for (uint64_t off = NEL * 2; off-- > NEL * 2 - 50;) {
		assert_int_equal(tensor_read_n(f, t, got, 1, off, NULL), 1);
		assert_int_equal(got[0], want[off]);
	}
	assert_true(oracle_check(b.p, b.len, f));
	ckpt_close(f);
	buf_free(&b);
	free(f32);
	free(want);
	free(got);
}

/* The file shrinks under an open handle: reads fail with CKPT_ERR_IO. */
static void test_read_after_truncate(void **state)
{
	static const int64_t d64[] = {64};
	uint8_t data[64], got[64];
	struct buf b = {0};
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	const struct ckpt_tensor *t;
	char *path;
	(void)state;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pat(i);
	buf_record(&b, "t", d64, 1, "UInt8", data, 64);
	path = buf_to_tmpfile(&b);
	assert_int_equal(ckpt_open(path, NULL, &f, &err), CKPT_OK);
	t = &ckpt_param_at(f, 0)->tensor;
	assert_int_equal(tensor_read_n(f, t, got, 64, 0, &err), 64);
	assert_int_equal(truncate(path, (off_t)(b.len - 10)), 0);
	assert_int_equal(tensor_read_n(f, t, got, 10, 0, &err), 10);
	assert_memory_equal(got, data, 10);
	memset(&err, 0, sizeof(err));
	assert_int_equal(tensor_read_n(f, t, got, 64, 0, &err), -1);
	assert_int_equal(err.code, CKPT_ERR_IO);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(tensor_read_n(f, t, got, 64, 0, NULL), -1);
	ckpt_close(f);
	unlink(path);
	free(path);
	buf_free(&b);
}

/* Number of values per file from the fixtures' MANIFEST.md summary table
 * ("| `name` | size | repo | values | ..."); -1 if not listed. */
static long manifest_values(const char *dir, const char *name)
{
	char path[4096], line[1024], key[512];
	long v = -1;
	FILE *m;

	snprintf(path, sizeof(path), "%s/MANIFEST.md", dir);
	snprintf(key, sizeof(key), "| `%s` |", name);
	m = fopen(path, "r");
	if (!m)
		return -1;
	while (fgets(line, sizeof(line), m)) {
		unsigned long long size;
		char repo[256];
		if (strncmp(line, key, strlen(key)) != 0)
			continue;
		if (sscanf(line + strlen(key), " %llu | %255s | %ld |", &size,
			   repo, &v) != 3)
			v = -1;
		break;
	}
	fclose(m);
	return v;
}

static void test_real_fixtures(void **state)
{
	const char *dir = fixtures_dir();
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t nfiles = 0, nparams = 0, nlisted = 0;
	(void)state;

	if (!d)
		print_error("cannot open fixtures directory %s\n", dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[4096];
		struct ckpt_file *f = NULL;
		struct ckpt_error err = {0};
		const struct ckpt_stats *st;
		struct buf data = {0};
		size_t len = strlen(de->d_name);
		uint64_t total = 0;
		long listed;

		if (len < 5 || strcmp(de->d_name + len - 5, ".ckpt") != 0 ||
		    strncmp(de->d_name, "NEG_", 4) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (ckpt_open(path, NULL, &f, &err) != CKPT_OK)
			print_error("%s\n", err.msg);
		assert_non_null(f);
		st = ckpt_stats(f);
		assert_true(ckpt_count(f) > 0);
		for (size_t i = 0; i < ckpt_count(f); i++) {
			const struct ckpt_param *p = ckpt_param_at(f, i);
			uint8_t *buf;
			ssize_t n;

			assert_int_equal(p->kind, CKPT_PARAM_TENSOR);
			assert_int_equal(ckpt_find(f, p->fname), (ssize_t)i);
			buf = malloc(p->tensor.size + 1);
			assert_non_null(buf);
			n = tensor_read_n(f, &p->tensor, buf,
					  (size_t)p->tensor.size + 1, 0, &err);
			if (n < 0)
				print_error("%s\n", err.msg);
			assert_int_equal(n, (ssize_t)p->tensor.size);
			free(buf);
			total += p->tensor.size;
		}
		assert_int_equal(st->data_bytes, total);
		assert_int_equal(st->file_size,
				 st->stream_size + (st->has_crc ? 17 : 0));
		listed = manifest_values(dir, de->d_name);
		if (listed >= 0) {
			assert_int_equal(st->records, (uint64_t)listed);
			nlisted++;
		}
		/* and the same as protobuf-c makes of it */
		assert_true(buf_read_file(&data, path));
		assert_int_equal(data.len, st->file_size);
		assert_true(oracle_check(data.p, (size_t)st->stream_size, f));
		buf_free(&data);
		nparams += ckpt_count(f);
		nfiles++;
		ckpt_close(f);
	}
	closedir(d);
	/* the fixture set: 20 valid files */
	assert_true(nfiles >= 20);
	assert_int_equal(nlisted, nfiles);
	assert_true(nparams > 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_offset_and_length),
		cmocka_unit_test(test_read_past_end),
		cmocka_unit_test(test_extent_at),
		cmocka_unit_test(test_many_slices),
		cmocka_unit_test(test_bf16_large),
		cmocka_unit_test(test_read_after_truncate),
		cmocka_unit_test(test_real_fixtures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
