/*
 * test_crc.c - ckpt_crc32 against known vectors and a bitwise reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builder.h"
#include "ckpt.h"

/* spec section 1: one value, global_step, Int32, dims [1], value 7 */
static const uint8_t global_step[32] = {
	0x0a, 0x1e, 0x0a, 0x0b, 'g',  'l',  'o',  'b',	'a',  'l',  '_',
	's',  't',  'e',  'p',	0x12, 0x0f, 0x08, 0x01, 0x12, 0x05, 'I',
	'n',  't',  '3',  '2',	0x1a, 0x04, 0x07, 0x00, 0x00, 0x00,
};

static void test_known_vectors(void **state)
{
	static const uint8_t zeros[32] = {0};
	static const uint8_t ffs[4] = {0xff, 0xff, 0xff, 0xff};
	(void)state;

	assert_int_equal(ckpt_crc32(0, "123456789", 9), 0xCBF43926u);
	assert_int_equal(ckpt_crc32(0, "", 0), 0);
	assert_int_equal(ckpt_crc32(0, NULL, 0), 0);
	assert_int_equal(ckpt_crc32(0, "a", 1), 0xE8B7BE43u);
	assert_int_equal(ckpt_crc32(0, "abc", 3), 0x352441C2u);
	assert_int_equal(
		ckpt_crc32(0, "The quick brown fox jumps over the lazy dog",
			   43),
		0x414FA339u);
	assert_int_equal(ckpt_crc32(0, zeros, 32), 0x190A55ADu);
	assert_int_equal(ckpt_crc32(0, ffs, 4), 0xFFFFFFFFu);
	assert_int_equal(ckpt_crc32(0, global_step, sizeof(global_step)),
			 0x440453A5u);
	/* the reference used by the builder agrees */
	assert_int_equal(ref_crc32("123456789", 9), 0xCBF43926u);
	assert_int_equal(ref_crc32(global_step, 32), 0x440453A5u);
}

/* A crc continued with no data is unchanged. */
static void test_empty_continuation(void **state)
{
	(void)state;
	assert_int_equal(ckpt_crc32(0xCBF43926u, "", 0), 0xCBF43926u);
	assert_int_equal(ckpt_crc32(0x12345678u, NULL, 0), 0x12345678u);
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);
	uint32_t x = 0x9E3779B9u;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* One-shot equals the bitwise reference for every length up to 300 and at
 * every alignment of the start (slice-by-8 takes 8-byte steps). */
static void test_lengths_and_alignment(void **state)
{
	enum {
		MAX = 300
	};
	uint8_t *p = pattern(MAX + 16);
	(void)state;

	for (size_t align = 0; align < 8; align++)
		for (size_t n = 0; n <= MAX; n++)
			assert_int_equal(ckpt_crc32(0, p + align, n),
					 ref_crc32(p + align, n));
	free(p);
}

/* Incremental == one-shot, split at every point, including odd ones. */
static void test_incremental(void **state)
{
	static const size_t lens[] = {1, 7, 9, 15, 17, 31, 33, 63, 100, 257};
	uint8_t *p = pattern(300);
	(void)state;

	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t n = lens[li];
		uint32_t whole = ckpt_crc32(0, p, n);
		assert_int_equal(whole, ref_crc32(p, n));
		for (size_t cut = 0; cut <= n; cut++) {
			uint32_t c = ckpt_crc32(0, p, cut);
			c = ckpt_crc32(c, p + cut, n - cut);
			assert_int_equal(c, whole);
		}
		/* three pieces */
		for (size_t a = 0; a <= n; a += 3)
			for (size_t b = a; b <= n; b += 5) {
				uint32_t c = ckpt_crc32(0, p, a);
				c = ckpt_crc32(c, p + a, b - a);
				c = ckpt_crc32(c, p + b, n - b);
				assert_int_equal(c, whole);
			}
	}
	/* byte by byte */
	uint32_t c = 0;
	for (size_t i = 0; i < 257; i++)
		c = ckpt_crc32(c, p + i, 1);
	assert_int_equal(c, ref_crc32(p, 257));
	free(p);
}

/* A larger buffer, in chunks of odd sizes. */
static void test_large_chunked(void **state)
{
	enum {
		N = 1 << 20
	};
	uint8_t *p = pattern(N);
	uint32_t whole, c = 0;
	size_t off = 0, step = 1;
	(void)state;

	whole = ckpt_crc32(0, p, N);
	assert_int_equal(whole, ref_crc32(p, N));
	while (off < N) {
		size_t n = N - off < step ? N - off : step;
		c = ckpt_crc32(c, p + off, n);
		off += n;
		step = step * 3 + 1; /* 1, 4, 13, 40, ... */
		if (step > 70000)
			step = 5;
	}
	assert_int_equal(c, whole);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_empty_continuation),
		cmocka_unit_test(test_lengths_and_alignment),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_large_chunked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
