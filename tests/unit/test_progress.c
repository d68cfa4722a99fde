/*
 * test_progress.c - the progress line of ckpt (src/common/progress.c):
 * the text ckpt_progress_format makes, and which updates a display that
 * is not a terminal shows (stderr is a temporary file here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt_common.h"

#define MiB (1024.0 * 1024.0)

/* The line for done of total at rate, checked against want. */
static void expect_line(uint64_t done, uint64_t total, double rate,
			const char *want)
{
	char buf[160];
	size_t n = ckpt_progress_format(buf, sizeof(buf), done, total, rate);

	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static void test_format(void **state)
{
	(void)state;
	expect_line(0, 100u << 20, 0, "0 B of 100.0 MiB (0%)");
	expect_line(812, 4096, 0, "812 B of 4.0 KiB (19%)");
	expect_line(50u << 20, 100u << 20, 10 * MiB,
		    "50.0 MiB of 100.0 MiB (50%), 10.0 MiB/s, 0:05 left");
	expect_line(100u << 20, 100u << 20, 10 * MiB,
		    "100.0 MiB of 100.0 MiB (100%), 10.0 MiB/s");
	/* 9 GiB left at 1 MiB/s: 9216 s */
	expect_line(1ull << 30, 10ull << 30, MiB,
		    "1.0 GiB of 10.0 GiB (10%), 1.0 MiB/s, 2:33:36 left");
	expect_line(3ull << 40, 4ull << 40, 0, "3.0 TiB of 4.0 TiB (75%)");
	/* an empty commit is complete; done past total shows 100% */
	expect_line(0, 0, 0, "0 B of 0 B (100%)");
	expect_line(120, 100, 50, "120 B of 100 B (100%), 50 B/s");
}

static void test_format_cut(void **state)
{
	char buf[8];
	size_t n = ckpt_progress_format(buf, sizeof(buf), 1, 2, 0);

	(void)state;
	assert_int_equal(n, 7);
	assert_string_equal(buf, "1 B of ");
}

/* Runs fn with stderr in a temporary file; what it printed, malloc'd. */
static char *captured(void (*fn)(void))
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	char *out = calloc(1, 4096);

	assert_non_null(f);
	assert_non_null(out);
	fflush(stderr);
	assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	assert_true(fread(out, 1, 4095, f) < 4095);
	fclose(f);
	return out;
}

/* CKPT_PROGRESS=1, not a terminal: the first line at once, the next ones
 * at most once a second, the one at the total always and only once. */
static void forced_updates(void)
{
	struct ckpt_progress p;

	setenv("CKPT_PROGRESS", "1", 1);
	ckpt_progress_start(&p, false);
	assert_true(p.on);
	assert_false(p.tty);
	ckpt_progress_update(&p, 0, 10);
	ckpt_progress_update(&p, 5, 10); /* too soon */
	ckpt_progress_update(&p, 10, 10);
	ckpt_progress_update(&p, 10, 10); /* shown already */
	ckpt_progress_end(&p);
}

static void quiet_updates(void)
{
	struct ckpt_progress p;

	setenv("CKPT_PROGRESS", "1", 1);
	ckpt_progress_start(&p, true);
	assert_false(p.on);
	ckpt_progress_update(&p, 0, 10);
	ckpt_progress_update(&p, 10, 10);
	ckpt_progress_end(&p);
}

static void unforced_updates(void)
{
	struct ckpt_progress p;

	unsetenv("CKPT_PROGRESS");
	ckpt_progress_start(&p, false);
	assert_false(p.on);
	ckpt_progress_cb(&p, 10, 10);
	ckpt_progress_end(&p);
}

#define FORCED "0 B of 10 B (0%)\n10 B of 10 B (100%)"

/* The newlines in s. */
static int count_lines(const char *s)
{
	int n = 0;

	while ((s = strchr(s, '\n')) != NULL) {
		n++;
		s++;
	}
	return n;
}

static void test_display(void **state)
{
	char *out;

	(void)state;
	out = captured(forced_updates);
	/* the last line has a rate only if 50 ms passed (a slow machine) */
	assert_int_equal(count_lines(out), 2);
	assert_true(strncmp(out, FORCED, strlen(FORCED)) == 0);
	free(out);
	out = captured(quiet_updates);
	assert_string_equal(out, "");
	free(out);
	out = captured(unforced_updates);
	assert_string_equal(out, "");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_cut),
		cmocka_unit_test(test_display),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
