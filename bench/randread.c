/*
 * randread.c - random pread loop (and sequential mmap read) for bench/run.
 *
 *   randread FILE COUNT [BLOCK [SEED]]
 *   randread --mmap FILE
 *
 * Reads COUNT blocks of BLOCK bytes (default 4096) at block-aligned offsets
 * drawn from a fixed xorshift sequence (SEED, default 1) over the whole
 * file, so two files of the same size get exactly the same offsets.  Prints
 * the elapsed seconds of the loop (open and close excluded) and exits
 * non-zero if any read fails or comes back short.
 *
 * --mmap maps the whole file (MAP_SHARED, read-only, no madvise) and sums
 * it as 64-bit words front to back, as a consumer of an mmap'd tensor
 * touches every byte; prints the seconds of the loop (mmap and munmap
 * included) and the sum.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static double since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* randread --mmap FILE: see the top of this file. */
static int mmap_read(const char *path)
{
	struct timespec t0;
	struct stat st;
	uint64_t sum = 0;
	const uint64_t *w;
	size_t n;
	void *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 8) {
		fprintf(stderr, "randread: %s: %s\n", path,
			fd < 0 ? strerror(errno) : "too small");
		return 1;
	}
	n = (size_t)st.st_size / sizeof(*w);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "randread: mmap %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	w = p;
	for (size_t i = 0; i < n; i++)
		sum += w[i];
	munmap(p, (size_t)st.st_size);
	printf("%.9f %llu\n", since(&t0), (unsigned long long)sum);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct timespec t0;
	struct stat st;
	uint64_t seed, nblocks, sum = 0;
	long count;
	size_t bs;
	char *buf;
	int fd;

	if (argc == 3 && strcmp(argv[1], "--mmap") == 0)
		return mmap_read(argv[2]);
	if (argc < 3 || argc > 5) {
		fprintf(stderr,
			"usage: %s FILE COUNT [BLOCK [SEED]] | --mmap FILE\n",
			argv[0]);
		return 2;
	}
	count = strtol(argv[2], NULL, 10);
	bs = argc > 3 ? strtoul(argv[3], NULL, 10) : 4096;
	seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
	seed = seed * 0x9E3779B97F4A7C15ull | 1;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "randread: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	nblocks = (uint64_t)st.st_size / bs;
	buf = malloc(bs);
	if (!buf || nblocks == 0 || count <= 0) {
		fprintf(stderr, "randread: nothing to do\n");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++) {
		off_t off = (off_t)(next(&seed) % nblocks * bs);
		ssize_t r = pread(fd, buf, bs, off);
		if (r != (ssize_t)bs) {
			fprintf(stderr, "randread: pread at %lld: %s\n",
				(long long)off,
				r < 0 ? strerror(errno) : "short");
			return 1;
		}
		sum += (unsigned char)buf[i % bs];
	}
	printf("%.9f %llu\n", since(&t0), (unsigned long long)sum);
	close(fd);
	return 0;
}
