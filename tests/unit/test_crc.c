/*
 * test_crc.c - ckpt_crc32 against known vectors, a bitwise reference, the
 * portable slice-by-8 code (ckpt_crc32_portable, the fallback) and zlib's
 * crc32: every length up to 4096 at every alignment, with seeds, chained
 * across every split point, a few MiB, and no read outside the buffer.
 * Run in both builds: with ISA-L (ckpt_crc32 is crc32_gzip_refl) and with
 * -DCKPT_ISAL=OFF (ckpt_crc32 is the portable code).
 *
 * ckpt_crc32_fd (over a mapping of a file): the same CRCs for ranges at
 * any offset and across its 64 MiB windows, a range past the end of the
 * file is an error at the right offset (its SIGBUS caught), a SIGBUS
 * outside its windows is not swallowed (it kills), and an unmappable
 * file is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "base/base.h"
#include "builder.h"
#include "ckpt.h"

/* zlib's crc32 (len < 4 GiB here) */
static uint32_t zlib_crc32(uint32_t crc, const void *buf, size_t len)
{
	return (uint32_t)crc32(crc, buf, (uInt)len);
}

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

/* The build's ckpt_crc32 is the one it says (--version prints this). */
static void test_impl(void **state)
{
	(void)state;
#ifdef CKPT_HAVE_ISAL
	assert_memory_equal(ckpt_crc32_impl(), "ISA-L ", 6);
#else
	assert_memory_equal(ckpt_crc32_impl(), "portable", 8);
#endif
	/* the portable code on the known vectors, whichever build */
	assert_int_equal(ckpt_crc32_portable(0, "123456789", 9), 0xCBF43926u);
	assert_int_equal(ckpt_crc32_portable(0, NULL, 0), 0);
	assert_int_equal(ckpt_crc32_portable(0x12345678u, NULL, 0),
			 0x12345678u);
}

/* ckpt_crc32 == portable == zlib for every length 0..4096 at every start
 * alignment 0..15 (CLMUL code folds 16-, 64- and 256-byte blocks, with
 * tails), seeded with 0 and with a previous CRC. */
static void test_every_length_three_ways(void **state)
{
	enum {
		MAX = 4096,
		ALIGNS = 16
	};
	static const uint32_t seeds[] = {0, 0xFFFFFFFFu, 0x9BE1D0C5u};
	uint8_t *p = pattern(MAX + ALIGNS);
	(void)state;

	for (size_t si = 0; si < sizeof(seeds) / sizeof(seeds[0]); si++)
		for (size_t align = 0; align < ALIGNS; align++)
			for (size_t n = 0; n <= MAX; n++) {
				const uint8_t *q = p + align;
				uint32_t want = zlib_crc32(seeds[si], q, n);
				assert_int_equal(ckpt_crc32(seeds[si], q, n),
						 want);
				assert_int_equal(ckpt_crc32_portable(seeds[si],
								     q, n),
						 want);
			}
	free(p);
}

/* Chained over two pieces, split at every point of a 1000-byte buffer,
 * and over three, at every pair of points of a 300-byte one: each piece
 * continues the CRC of the ones before, as the trailer check's 1 MiB
 * chunks and a commit's records do. */
static void test_every_split(void **state)
{
	enum {
		N2 = 1000,
		N3 = 300
	};
	uint8_t *p = pattern(N2 + 1);
	const uint8_t *q = p + 1; /* odd start */
	uint32_t whole2 = zlib_crc32(0, q, N2), whole3 = zlib_crc32(0, q, N3);
	(void)state;

	for (size_t cut = 0; cut <= N2; cut++) {
		uint32_t c = ckpt_crc32(0, q, cut);
		assert_int_equal(ckpt_crc32(c, q + cut, N2 - cut), whole2);
		c = ckpt_crc32_portable(0, q, cut);
		assert_int_equal(ckpt_crc32_portable(c, q + cut, N2 - cut),
				 whole2);
	}
	for (size_t a = 0; a <= N3; a++)
		for (size_t b = a; b <= N3; b++) {
			uint32_t c = ckpt_crc32(0, q, a);
			c = ckpt_crc32(c, q + a, b - a);
			assert_int_equal(ckpt_crc32(c, q + b, N3 - b), whole3);
		}
	free(p);
}

/* A few MiB, at an odd start, whole and in chunks of odd sizes. */
static void test_few_mib_three_ways(void **state)
{
	enum {
		N = (5 << 20) + 13
	};
	uint8_t *p = pattern(N + 3);
	const uint8_t *q = p + 3;
	uint32_t want = zlib_crc32(0, q, N), c = 0;
	size_t off = 0, step = 1;
	(void)state;

	assert_int_equal(ckpt_crc32(0, q, N), want);
	assert_int_equal(ckpt_crc32_portable(0, q, N), want);
	while (off < N) {
		size_t n = N - off < step ? N - off : step;
		c = ckpt_crc32(c, q + off, n);
		off += n;
		step = step * 7 + 3; /* 1, 10, 73, 514, ... */
		if (step > 3000000)
			step = 2;
	}
	assert_int_equal(c, want);
	free(p);
}

/* No byte outside [buf, buf + len) is read: buffers that start right after
 * an inaccessible page and end right before one (a read past either end
 * faults; ASan does not see into ISA-L's assembly). */
static void test_no_read_outside(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), span = 2 * page;
	uint8_t *map = mmap(NULL, span + 2 * page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *p = pattern(span), *lo, *hi;
	(void)state;

	assert_true(map != MAP_FAILED);
	lo = map + page;
	hi = lo + span;
	memcpy(lo, p, span);
	assert_int_equal(mprotect(map, page, PROT_NONE), 0);
	assert_int_equal(mprotect(hi, page, PROT_NONE), 0);
	for (size_t n = 0; n <= span; n++) {
		assert_int_equal(ckpt_crc32(0, lo, n), zlib_crc32(0, p, n));
		assert_int_equal(ckpt_crc32(0, hi - n, n),
				 zlib_crc32(0, p + span - n, n));
	}
	assert_int_equal(munmap(map, span + 2 * page), 0);
	free(p);
}

/* A temporary file holding the n bytes of p; its descriptor. */
static int file_of(const uint8_t *p, size_t n)
{
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	assert_int_equal(ckpt_pwrite_full(fd, p, n, 0), 0);
	return fd;
}

static void test_fd_ranges(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t size = (64u << 20) + 3 * page + 77; /* two windows and more */
	uint8_t *p = pattern(size);
	int fd = file_of(p, size);
	const uint64_t offs[] = {0, 1, page - 1, page, page + 5, 1u << 20};
	(void)state;

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		const uint64_t lens[] = {0, 1, page, 3 * page + 1,
					 size - offs[i]};
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			uint32_t crc = 0x1234, want;
			uint64_t bad = 99;

			want = zlib_crc32(0x1234, p + offs[i], lens[j]);
			assert_int_equal(ckpt_crc32_fd(fd, offs[i], lens[j],
						       &crc, &bad),
					 0);
			assert_int_equal(crc, want);
		}
	}
	close(fd);
	free(p);
}

/* The file is shorter than the range (as if truncated underneath): the
 * SIGBUS of the first page past its end (ranges over 1 MiB: mapped) or
 * the short read (smaller ones) is an EIO there, and the guard stays
 * usable. */
static void test_fd_past_end(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = (2u << 20) + 100;
	size_t ceil = (size + page - 1) / page * page;
	uint8_t *p = pattern(size);
	int fd = file_of(p, size);
	const uint64_t offs[] = {0, page + 1, size - 50};
	(void)state;

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			uint32_t crc = 0;
			uint64_t bad = 0;

			errno = 0;
			assert_int_equal(ckpt_crc32_fd(fd, offs[i], 2 * size,
						       &crc, &bad),
					 -1);
			assert_int_equal(errno, EIO);
			assert_true(bad >= size && bad <= ceil);
		}
		{
			uint32_t crc = 0;
			uint64_t bad = 0;

			/* a small range: read, short at the end of the file */
			assert_int_equal(ckpt_crc32_fd(fd, size - 50, 1000,
						       &crc, &bad),
					 -1);
			assert_int_equal(bad, size);
			crc = 0;
			assert_int_equal(ckpt_crc32_fd(fd, 0, size, &crc, &bad),
					 0);
			assert_int_equal(crc, zlib_crc32(0, p, size));
		}
	}
	close(fd);
	free(p);
}

struct looper {
	int fd;
	size_t len;
	volatile int started;
};

/* Sums the file over and over: the guard is installed nearly always. */
static void *crc_forever(void *arg)
{
	struct looper *l = arg;

	for (;;) {
		uint32_t crc = 0;
		uint64_t bad;

		ckpt_crc32_fd(l->fd, 0, l->len, &crc, &bad);
		l->started = 1;
	}
	return NULL;
}

/* While another thread is inside the guard, a SIGBUS outside its window
 * still has the default action: it kills (in a child, which would die of
 * SIGALRM instead if the fault were swallowed and retried forever). */
static void test_fd_other_sigbus_kills(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 8u << 20;
	uint8_t *p = pattern(size);
	int fd = file_of(p, size), status;
	pid_t pid;
	(void)state;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct looper l = {.fd = fd, .len = size};
		volatile uint8_t *m;
		pthread_t t;

		signal(SIGBUS, SIG_DFL); /* not cmocka's handler */
		alarm(10);
		if (pthread_create(&t, NULL, crc_forever, &l) != 0)
			_exit(3);
		while (!l.started)
			sched_yield();
		m = mmap(NULL, size + 4 * page, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			_exit(4);
		(void)m[size + 2 * page]; /* past the end of the file */
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	close(fd);
	free(p);
}

/* A file that cannot be mapped (a proc file) is read through a buffer. */
static void test_fd_unmappable(void **state)
{
	uint8_t buf[4096];
	int fd = open("/proc/self/cmdline", O_RDONLY);
	ssize_t n;
	uint32_t crc = 7;
	uint64_t bad;
	(void)state;

	assert_true(fd >= 0);
	n = ckpt_pread_full(fd, buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_int_equal(ckpt_crc32_fd(fd, 0, (uint64_t)n, &crc, &bad), 0);
	assert_int_equal(crc, zlib_crc32(7, buf, (size_t)n));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_empty_continuation),
		cmocka_unit_test(test_lengths_and_alignment),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_large_chunked),
		cmocka_unit_test(test_impl),
		cmocka_unit_test(test_every_length_three_ways),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_few_mib_three_ways),
		cmocka_unit_test(test_no_read_outside),
		cmocka_unit_test(test_fd_ranges),
		cmocka_unit_test(test_fd_past_end),
		cmocka_unit_test(test_fd_other_sigbus_kills),
		cmocka_unit_test(test_fd_unmappable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
