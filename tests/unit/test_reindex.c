/*
 * test_reindex.c - the index a commit builds from what it encodes
 * (format/ckpt/reindex.c, index/copy.c) is the index a scan of the
 * written file finds: the same parameters in the same order, the same
 * records, extents, dtypes, dims and sizes, the same figures of the file.
 *
 * Each test opens a tree, edits it, writes its commit into a new file
 * with ckpt_commit_write asking for the index, scans that file with
 * ckpt_open_fd and compares the two with ckpt_index_same; one test checks
 * that the comparison itself sees a difference.  The checkpoints: a small
 * one of every kind of record (a parameter in three slices, a scalar, a
 * map, plain tensors, with and without a CRC trailer) and every real
 * fixture.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "ckpt_tree.h"
#include "commit/commit.h"
#include "index/index.h"
#include "tree/tree.h"

static void ok(ckpt_err rc, const struct ckpt_error *err)
{
	if (rc != CKPT_OK)
		fail_msg("%s: %s", ckpt_strerror(rc), err->msg);
}

/* The small checkpoint: "s" UInt8 [300] in slices of 100, 150 and 50
 * bytes, "k" an Int32 scalar, "a" Float32 [2,3], "m" a map, "z" Int64
 * [2,0]; with a CRC trailer if crc. */
static char *small_ckpt(bool crc)
{
	int64_t sd[1] = {300}, ad[2] = {2, 3}, zd[2] = {2, 0};
	uint8_t s[300], a[24];
	int32_t k = 7;
	struct buf b = {0};
	char *path;

	for (size_t i = 0; i < sizeof(s); i++)
		s[i] = (uint8_t)(i * 13);
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(0x40 + i);
	buf_record(&b, "s", sd, 1, "UInt8", s, 100);
	buf_record(&b, "s", sd, 1, "UInt8", s + 100, 150);
	buf_record(&b, "s", sd, 1, "UInt8", s + 250, 50);
	buf_record(&b, "k", NULL, 0, "Int32", &k, sizeof(k));
	buf_record(&b, "a", ad, 2, "Float32", a, sizeof(a));
	buf_small_map(&b, "m");
	buf_record(&b, "z", zd, 2, "Int64", NULL, 0);
	if (crc)
		buf_crc_trailer(&b);
	path = buf_to_tmpfile(&b);
	buf_free(&b);
	return path;
}

static struct ckpt_tree *open_tree(const char *path, bool crc)
{
	struct ckpt_tree_opts o = {.crc = crc ? CKPT_CRC_ADD : CKPT_CRC_KEEP};
	struct ckpt_error err = {0};
	struct ckpt_tree *t = NULL;

	ok(ckpt_tree_open(path, &o, &t, &err), &err);
	return t;
}

/* The index commit of t builds, and a scan of what it wrote (*scanned). */
static struct ckpt_file *commit_both(struct ckpt_tree *t,
				     struct ckpt_file **scanned)
{
	struct ckpt_write_opts o = {.index = ckpt_index_new()};
	struct ckpt_open_opts oo = {.format = "ckpt"};
	struct ckpt_error err = {0};
	char path[] = "/tmp/ckpt-reindex-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_non_null(o.index);
	ok(ckpt_commit_write(t, fd, &o, &err), &err);
	ok(ckpt_open_fd(fd, path, &oo, scanned, &err), &err);
	return o.index;
}

/* Commits t and asserts that the built index is complete and the same
 * as the scan's. */
static void assert_same_after_commit(struct ckpt_tree *t)
{
	struct ckpt_file *scanned = NULL;
	struct ckpt_file *built = commit_both(t, &scanned);
	char why[200] = "";

	assert_non_null(built->format); /* complete */
	if (!ckpt_index_same(built, scanned, why, sizeof(why)))
		fail_msg("built and scanned differ: %s", why);
	assert_true(ckpt_count(built) > 0 || ckpt_count(scanned) == 0);
	ckpt_close(built);
	ckpt_close(scanned);
}

static uint64_t look(struct ckpt_tree *t, const char *name)
{
	struct ckpt_error err = {0};
	uint64_t id = 0;

	ok(ckpt_tree_lookup(t, 0, name, &id, &err), &err);
	return id;
}

static void put(struct ckpt_tree *t, const char *name, const void *p, size_t n,
		uint64_t off)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_write(t, look(t, name), p, n, off, &err), &err);
}

/* ---- the tests ------------------------------------------------------------ */

static void run_small(bool crc, void (*edit)(struct ckpt_tree *t))
{
	char *path = small_ckpt(crc);
	struct ckpt_tree *t = open_tree(path, crc);

	if (edit)
		edit(t);
	assert_same_after_commit(t);
	ckpt_tree_close(t);
	unlink(path);
	free(path);
}

/* Nothing edited: every record is copied as it was. */
static void test_unchanged(void **state)
{
	(void)state;
	run_small(false, NULL);
	run_small(true, NULL);
}

/* An edit inside the sliced parameter, one of "a": both re-encoded,
 * the others copied at new offsets or the same. */
static void edit_bytes(struct ckpt_tree *t)
{
	static const uint8_t x[4] = {1, 2, 3, 4};

	put(t, "s", x, sizeof(x), 120);
	put(t, "a", x, sizeof(x), 0);
}

static void test_edited(void **state)
{
	(void)state;
	run_small(false, edit_bytes);
	run_small(true, edit_bytes);
}

/* A new parameter, a deleted one, a renamed one, a retyped one and a
 * grown one: records move, appear and change their headers. */
static void edit_layout(struct ckpt_tree *t)
{
	struct ckpt_error err = {0};
	static const uint8_t x[40] = {9};
	uint64_t id = 0;

	ok(ckpt_tree_create(t, "new.weight", &id, &err), &err);
	ok(ckpt_tree_write(t, id, x, sizeof(x), 0, &err), &err);
	ok(ckpt_tree_set_shape(t, id, "[10]", 4, &err), &err);
	ok(ckpt_tree_set_dtype(t, id, "Float32", 7, &err), &err);
	ok(ckpt_tree_unlink(t, "k", &err), &err);
	ok(ckpt_tree_rename(t, "a", "a.renamed", false, &err), &err);
	ok(ckpt_tree_set_dtype(t, look(t, "a.renamed"), "Int32", 5, &err),
	   &err);
	ok(ckpt_tree_truncate(t, look(t, "s"), 400, &err), &err);
	ok(ckpt_tree_set_shape(t, look(t, "s"), "[400]", 5, &err), &err);
}

static void test_layout_changed(void **state)
{
	(void)state;
	run_small(false, edit_layout);
	run_small(true, edit_layout);
}

/* Every real fixture, unchanged and with its first byte changed. */
static void test_fixtures(void **state)
{
	const char *dir = fixtures_dir();
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];
	int n = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct ckpt_tree *t;

		if (len < 5 || strcmp(de->d_name + len - 5, ".ckpt") ||
		    !strncmp(de->d_name, "NEG_", 4))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		t = open_tree(path, false);
		assert_same_after_commit(t);
		ckpt_tree_close(t);
		n++;
	}
	closedir(d);
	assert_true(n >= 10);
}

/* The comparison sees a moved extent, a renamed parameter and another
 * file size. */
static void test_same_sees_differences(void **state)
{
	char *path = small_ckpt(false);
	struct ckpt_tree *t = open_tree(path, false);
	struct ckpt_file *scanned = NULL, *built = commit_both(t, &scanned);
	char why[200] = "";
	struct ckpt_param *p = &built->params[0]; /* "s" */

	(void)state;
	assert_true(ckpt_index_same(built, scanned, why, sizeof(why)));
	p->tensor.extents[0].src++;
	assert_false(ckpt_index_same(built, scanned, why, sizeof(why)));
	assert_true(strlen(why) > 0);
	p->tensor.extents[0].src--;
	((char *)CKPT_UNCONST(p->name))[0] ^= 1;
	assert_false(ckpt_index_same(built, scanned, why, sizeof(why)));
	((char *)CKPT_UNCONST(p->name))[0] ^= 1;
	built->stats.file_size++;
	assert_false(ckpt_index_same(built, scanned, why, sizeof(why)));
	built->stats.file_size--;
	assert_true(ckpt_index_same(built, scanned, why, sizeof(why)));
	ckpt_close(built);
	ckpt_close(scanned);
	ckpt_tree_close(t);
	unlink(path);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unchanged),
		cmocka_unit_test(test_edited),
		cmocka_unit_test(test_layout_changed),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_same_sees_differences),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
