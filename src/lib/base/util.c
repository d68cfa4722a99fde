/*
 * util.c - the clock, the string hash and the extent search libckpt uses
 * everywhere.
 */
#include <time.h>

#include <string.h>

#include "base/base.h"

uint64_t ckpt_ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

uint64_t ckpt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ckpt_ts_ns(&ts);
}

uint64_t ckpt_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

size_t ckpt_extent_at(const struct ckpt_extent *x, size_t n, uint64_t pos)
{
	size_t lo = 0, hi = n;

	while (hi - lo > 1) { /* last extent with x.pos <= pos */
		size_t mid = lo + (hi - lo) / 2;
		if (x[mid].pos <= pos)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

int ckpt_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}
