/*
 * progress.c - the progress line of ckpt convert, commit and umount (see
 * ckpt_common.h): "1.5 GiB of 4.0 GiB (37%), 210.3 MiB/s, 0:12 left".
 *
 * Owns when a line is shown and how it looks; the callers own where the
 * numbers come from (the library's progress callback for convert, the
 * mount's user.ckptfs.progress for commit and umount).  On a terminal the
 * line is rewritten in place ('\r', padded over the previous one) and
 * gets its newline at the end; elsewhere (CKPT_PROGRESS=1) each update is
 * a line of its own, so a log stays readable.  The rate is the average
 * since the first line.  No locks, no allocation; stderr only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_common.h"

#define TTY_INTERVAL_NS 200000000ull  /* 5 lines a second on a terminal */
#define LOG_INTERVAL_NS 1000000000ull /* one a second elsewhere */
#define RATE_MIN_SECS 0.05	      /* sooner, no rate can be told */

/* CLOCK_MONOTONIC in ns. */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* v bytes as "812 B", "1.5 KiB", "210.3 MiB", ... into b. */
static void fmt_bytes(char *b, size_t size, double v)
{
	static const char *const unit[] = {"B",	  "KiB", "MiB",
					   "GiB", "TiB", "PiB"};
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(*unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(b, size, "%.0f B", v);
	else
		snprintf(b, size, "%.1f %s", v, unit[u]);
}

/* secs as "0:07", "12:34" or "3:02:15" into b. */
static void fmt_time(char *b, size_t size, double secs)
{
	unsigned long long s = secs < 1e9 ? (unsigned long long)(secs + 0.5)
					  : 999999999ull;

	if (s < 3600)
		snprintf(b, size, "%llu:%02llu", s / 60, s % 60);
	else
		snprintf(b, size, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60,
			 s % 60);
}

size_t ckpt_progress_format(char *buf, size_t size, uint64_t done,
			    uint64_t total, double rate)
{
	char d[32], t[32], r[32], left[32];
	uint64_t capped = done < total ? done : total;
	int n, pct = total ? (int)((double)capped * 100 / (double)total) : 100;

	fmt_bytes(d, sizeof(d), (double)done);
	fmt_bytes(t, sizeof(t), (double)total);
	fmt_bytes(r, sizeof(r), rate);
	if (rate > 0 && done < total)
		fmt_time(left, sizeof(left), (double)(total - done) / rate);
	if (rate <= 0)
		n = snprintf(buf, size, "%s of %s (%d%%)", d, t, pct);
	else if (done >= total)
		n = snprintf(buf, size, "%s of %s (%d%%), %s/s", d, t, pct, r);
	else
		n = snprintf(buf, size, "%s of %s (%d%%), %s/s, %s left", d, t,
			     pct, r, left);
	if (n < 0)
		n = 0;
	return (size_t)n < size ? (size_t)n : size - 1;
}

void ckpt_progress_start(struct ckpt_progress *p, bool quiet)
{
	const char *env = getenv("CKPT_PROGRESS");

	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO) == 1;
	p->on = !quiet && (p->tty || (env && strcmp(env, "1") == 0));
}

/* Prints line (len bytes) as the display's current line. */
static void show_line(struct ckpt_progress *p, const char *line, int len)
{
	if (p->tty)
		fprintf(stderr, "\r%s%*s", line,
			p->width > len ? p->width - len : 0, "");
	else
		fprintf(stderr, "%s\n", line);
	fflush(stderr);
	p->width = len;
	p->shown = true;
}

void ckpt_progress_update(struct ckpt_progress *p, uint64_t done,
			  uint64_t total)
{
	uint64_t now = mono_ns();
	uint64_t gap = p->tty ? TTY_INTERVAL_NS : LOG_INTERVAL_NS;
	bool final = done >= total;
	double secs, rate = 0;
	char line[160];
	size_t len;

	if (!p->on || (final && p->final_shown) ||
	    (!final && p->shown && now - p->shown_ns < gap))
		return;
	if (!p->shown) {
		p->start_ns = now;
		p->start_done = done;
	}
	secs = (double)(now - p->start_ns) / 1e9;
	if (secs >= RATE_MIN_SECS && done > p->start_done)
		rate = (double)(done - p->start_done) / secs;
	len = ckpt_progress_format(line, sizeof(line), done, total, rate);
	show_line(p, line, (int)len);
	p->shown_ns = now;
	p->final_shown = final;
}

void ckpt_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	ckpt_progress_update(ctx, done, total);
}

void ckpt_progress_end(struct ckpt_progress *p)
{
	if (p->on && p->tty && p->shown) {
		fputc('\n', stderr);
		fflush(stderr);
	}
	p->shown = false;
	p->width = 0;
}
