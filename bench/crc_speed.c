/*
 * crc_speed.c - raw CRC-32 throughput for bench/run (group crc).
 *
 *   crc_speed BYTES
 *
 * Runs each CRC-32 over BYTES bytes, a 1 MiB buffer (in cache, as the
 * trailer check's chunks are) again and again, and prints one line each:
 * "NAME SECONDS CRC", where NAME is ckpt_crc32 (what this build computes
 * with: ISA-L, or the portable code without it), portable (the slice-by-8
 * fallback) and zlib (zlib's crc32).  The three CRCs must agree; exits
 * non-zero if they do not.  Built with the tests (tests/CMakeLists.txt).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "base/base.h"

enum {
	CHUNK = 1 << 20
};

static uint32_t zlib_crc32(uint32_t crc, const void *buf, size_t len)
{
	return (uint32_t)crc32(crc, buf, (uInt)len);
}

/* Seconds for crc over total bytes of buf, in CHUNK steps; *out the CRC. */
static double run(uint32_t (*crc)(uint32_t, const void *, size_t),
		  const uint8_t *buf, uint64_t total, uint32_t *out)
{
	struct timespec t0, t1;
	uint32_t c = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t off = 0; off < total; off += CHUNK) {
		uint64_t left = total - off;
		c = crc(c, buf, left < CHUNK ? (size_t)left : CHUNK);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*out = c;
	return (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		uint32_t (*crc)(uint32_t, const void *, size_t);
	} impls[] = {{"ckpt_crc32", ckpt_crc32},
		     {"portable", ckpt_crc32_portable},
		     {"zlib", zlib_crc32}};
	uint32_t first = 0, x = 0x9E3779B9u;
	uint64_t total;
	uint8_t *buf;

	if (argc != 2 || (total = strtoull(argv[1], NULL, 0)) == 0) {
		fprintf(stderr, "usage: crc_speed BYTES\n");
		return 2;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		fprintf(stderr, "crc_speed: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < CHUNK; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		uint32_t c;
		double s = run(impls[i].crc, buf, total, &c);

		printf("%s %.6f %08x\n", impls[i].name, s, c);
		if (i == 0)
			first = c;
		else if (c != first) {
			fprintf(stderr,
				"crc_speed: %s gives %08x, ckpt_crc32 "
				"%08x\n",
				impls[i].name, c, first);
			free(buf);
			return 1;
		}
	}
	free(buf);
	return 0;
}
