/*
 * test_stage.c - the staging layout of a parameter stored in slices
 * (tree/stage.c): every slice keeps its source offset modulo the block
 * size in the staging file, so that a reflinking file system shares its
 * blocks; and reads, writes, truncations and commits across the slices'
 * edges see one contiguous parameter.
 *
 * The checkpoint: "s", UInt8 [SLICES total], stored as three records of
 * 5000, 9000 and 3001 bytes (consecutive records of one name are slices
 * of it); then "t", UInt8 [64], in one record.  The staging directory is
 * /tmp's file system (its block size: gaps between the staged slices).
 */
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
#include "tree/tree.h"

#define NSLICES 3
static const size_t slice_len[NSLICES] = {5000, 9000, 3001};
#define TOTAL (5000 + 9000 + 3001)
#define CAP (3 * TOTAL) /* the model's room: sizes stay under it */

struct fx {
	char dir[64];
	char path[PATH_MAX];
	struct ckpt_tree *t;
	uint64_t s;	    /* the id of "s" */
	uint8_t model[CAP]; /* what "s" must read as */
	size_t size;	    /* ... and its size */
};

/* ---- the fixture ---------------------------------------------------------- */

static void build(struct buf *b, uint8_t *model)
{
	int64_t dims[1] = {TOTAL}, tdims[1] = {64};
	uint8_t t[64];
	size_t at = 0;

	for (size_t i = 0; i < TOTAL; i++)
		model[i] = (uint8_t)(i * 7 + i / 251);
	memset(t, 0x5a, sizeof(t));
	memset(b, 0, sizeof(*b));
	for (int k = 0; k < NSLICES; k++) {
		buf_record(b, "s", dims, 1, "UInt8", model + at, slice_len[k]);
		at += slice_len[k];
	}
	buf_record(b, "t", tdims, 1, "UInt8", t, sizeof(t));
}

static void ok(ckpt_err rc, const struct ckpt_error *err)
{
	if (rc != CKPT_OK)
		fail_msg("%s: %s", ckpt_strerror(rc), err->msg);
}

static void open_tree(struct fx *f)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_open(f->path, NULL, &f->t, &err), &err);
	ok(ckpt_tree_lookup(f->t, 0, "s", &f->s, &err), &err);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct buf b;
	char *tmp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ckpt-stage-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sliced.ckpt", f->dir);
	build(&b, f->model);
	f->size = TOTAL;
	tmp = buf_to_tmpfile(&b);
	if (rename(tmp, f->path) != 0) /* both in /tmp */
		fail_msg("rename into %s: %s", f->dir, strerror(errno));
	free(tmp);
	buf_free(&b);
	open_tree(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX + 16];

	ckpt_tree_close(f->t);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* The tree's entry of "s" (the layout is internal: tree/tree.h). */
static const struct entry *entry_s(const struct fx *f)
{
	for (size_t i = 0; i < f->t->norder; i++)
		if (strcmp(f->t->order[i]->name, "s") == 0)
			return f->t->order[i];
	fail_msg("no entry 's'");
	return NULL;
}

static void put(struct fx *f, size_t off, size_t n, uint8_t seed)
{
	struct ckpt_error err = {0};
	uint8_t buf[CAP];

	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed + i * 13);
	ok(ckpt_tree_write(f->t, f->s, buf, n, off, &err), &err);
	if (off > f->size) /* a hole reads as zeros */
		memset(f->model + f->size, 0, off - f->size);
	memcpy(f->model + off, buf, n);
	if (off + n > f->size)
		f->size = off + n;
}

static void truncate_to(struct fx *f, size_t size)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_truncate(f->t, f->s, size, &err), &err);
	if (size > f->size)
		memset(f->model + f->size, 0, size - f->size);
	f->size = size;
}

/* "s" reads as the model: whole, and in pieces across every edge. */
static void check_reads(struct fx *f)
{
	static const size_t step[] = {1, 7, 4096, 4999, 5001};
	struct ckpt_entry_info info;
	struct ckpt_error err = {0};
	uint8_t buf[CAP];
	size_t done = 0;

	ok(ckpt_tree_stat(f->t, f->s, &info, &err), &err);
	assert_int_equal(info.size, f->size);
	ok(ckpt_tree_read(f->t, f->s, buf, CAP, 0, &done, &err), &err);
	assert_int_equal(done, f->size);
	assert_memory_equal(buf, f->model, f->size);
	for (size_t k = 0; k < sizeof(step) / sizeof(step[0]); k++) {
		for (size_t off = 0; off < f->size; off += step[k]) {
			size_t n = step[k] * 2 + 3;
			ok(ckpt_tree_read(f->t, f->s, buf, n, off, &done, &err),
			   &err);
			n = off + n > f->size ? f->size - off : n;
			assert_int_equal(done, n);
			assert_memory_equal(buf, f->model + off, n);
		}
	}
}

/* Committed with the shape [size], the file holds the model as "s" (read
 * back with a new ckpt_open and, independently, protobuf-c:
 * oracle_check). */
static void check_committed(struct fx *f)
{
	struct ckpt_error err = {0};
	struct ckpt_file *file = NULL;
	uint8_t buf[CAP];
	size_t done = 0, n = 0;
	uint8_t *data;
	char shape[32];
	FILE *fp;

	snprintf(shape, sizeof(shape), "[%zu]", f->size); /* as it is now */
	ok(ckpt_tree_set_shape(f->t, f->s, shape, strlen(shape), &err), &err);
	ok(ckpt_tree_commit(f->t, &err), &err);
	ok(ckpt_open(f->path, NULL, &file, &err), &err);
	assert_true(ckpt_count(file) >= 1);
	assert_string_equal(ckpt_param_at(file, 0)->name, "s");
	ok(ckpt_tensor_read(file, &ckpt_param_at(file, 0)->tensor, buf, CAP, 0,
			    &done, &err),
	   &err);
	assert_int_equal(done, f->size);
	assert_memory_equal(buf, f->model, f->size);
	fp = fopen(f->path, "rb");
	assert_non_null(fp);
	data = malloc(1 << 20);
	assert_non_null(data);
	n = fread(data, 1, 1 << 20, fp);
	fclose(fp);
	assert_true(oracle_check(data, n, file));
	free(data);
	ckpt_close(file);
}

/* ---- tests ---------------------------------------------------------------- */

/* Each staged slice starts at its source offset modulo the block size,
 * and the gaps are under a block. */
static void test_slices_keep_their_alignment(void **state)
{
	struct fx *f = *state;
	const struct entry *e;
	const struct ckpt_tensor *mt;
	uint64_t blk, run, prev_end = 0;

	put(f, 6000, 16, 1);
	e = entry_s(f);
	mt = &e->orig->tensor;
	assert_int_equal(mt->nextents, NSLICES);
	assert_true(e->stage_fd >= 0);
	blk = ckpt_block_size(e->stage_fd);
	assert_int_equal((uint64_t)1 << e->stage_shift, blk);
	for (uint32_t k = 0; k < mt->nextents; k++) {
		const struct ckpt_extent *x = &mt->extents[k];
		uint64_t pos = ckpt_stage_pos(e, x->pos, &run);
		assert_int_equal(pos % blk, x->src % blk);
		assert_true(pos >= prev_end && pos - prev_end < blk);
		if (k + 1 < mt->nextents)
			assert_int_equal(run, x->len);
		else
			assert_int_equal(run, UINT64_MAX);
		prev_end = pos + x->len;
		assert_int_equal(ckpt_stage_size_at(e, prev_end),
				 x->pos + x->len);
	}
	check_reads(f);
}

/* Writes across the edges between slices land in both. */
static void test_writes_across_edges(void **state)
{
	struct fx *f = *state;

	put(f, 4990, 20, 3);	  /* slices 0 and 1 */
	put(f, 13995, 10, 5);	  /* 1 and 2 */
	put(f, 4000, 11000, 9);	  /* all three */
	put(f, TOTAL - 1, 1, 11); /* the last byte */
	check_reads(f);
	check_committed(f);
}

/* Growing past the stored size continues the last slice; shrinking into
 * an earlier slice and growing again reads zeros, across the old edges. */
static void test_truncate_and_extend(void **state)
{
	struct fx *f = *state;

	put(f, TOTAL + 100, 500, 2); /* a hole, then bytes */
	check_reads(f);
	truncate_to(f, 7000); /* into slice 1 */
	check_reads(f);
	truncate_to(f, 16000); /* zeros across the old edge of slice 2 */
	check_reads(f);
	put(f, 4999, 2, 4);
	truncate_to(f, 3000); /* into slice 0 */
	truncate_to(f, TOTAL + 10);
	check_reads(f);
	check_committed(f);
}

/* Emptied, the parameter starts again in a new, contiguous file. */
static void test_truncate_to_zero_then_write(void **state)
{
	struct fx *f = *state;

	put(f, 100, 10, 6);
	truncate_to(f, 0);
	assert_int_equal(entry_s(f)->stage_shift, 0);
	put(f, 0, 20000, 8);
	check_reads(f);
	check_committed(f);
}

/* A truncation without a write stages the slices too. */
static void test_truncate_first(void **state)
{
	struct fx *f = *state;

	truncate_to(f, 14500);
	assert_true(entry_s(f)->stage_shift > 0);
	check_reads(f);
	check_committed(f);
}

/* Random writes and truncations, checked against the model after each
 * step, then committed: the same bytes in the new file. */
static void test_random_edits(void **state)
{
	struct fx *f = *state;
	unsigned seed = 12345;

	for (int i = 0; i < 300; i++) {
		size_t off = (size_t)rand_r(&seed) % (TOTAL + 2000);
		size_t n = 1 + (size_t)rand_r(&seed) % 6000;
		if (rand_r(&seed) % 5 == 0) {
			truncate_to(f, off);
		} else {
			if (off + n > CAP)
				n = CAP - off;
			put(f, off, n, (uint8_t)i);
		}
		if (i % 25 == 0)
			check_reads(f);
	}
	check_reads(f);
	check_committed(f);
}

/* The staging file's size maps back to the parameter's: at a slice's
 * end, inside one, in the gap after one, before the first byte. */
static void test_size_at_the_edges(void **state)
{
	struct fx *f = *state;
	const struct entry *e;
	uint64_t run, end0, start1;

	put(f, 0, 1, 1);
	e = entry_s(f);
	end0 = ckpt_stage_pos(e, 4999, &run) + 1;
	start1 = ckpt_stage_pos(e, 5000, &run);
	assert_int_equal(ckpt_stage_size_at(e, end0), 5000);
	assert_int_equal(ckpt_stage_size_at(e, end0 - 10), 4990);
	if (start1 > end0) /* a gap: it holds no byte of the parameter */
		assert_int_equal(ckpt_stage_size_at(e, start1), 5000);
	assert_int_equal(ckpt_stage_size_at(e, start1 + 1), 5001);
	assert_int_equal(ckpt_stage_size_at(e, e->stage_off), 0);
	assert_int_equal(ckpt_stage_end(e, 5000), end0);
	assert_int_equal(ckpt_stage_end(e, 0), e->stage_off);
}

/* A parameter in more slices than get a gap each (here 100 of 7 bytes)
 * is staged contiguously, and reads and commits as it should. */
static void test_many_slices_stay_contiguous(void **state)
{
	struct fx *f = *state;
	int64_t dims[1] = {700};
	struct buf b = {0};
	char *tmp;

	ckpt_tree_close(f->t);
	for (size_t i = 0; i < 700; i++)
		f->model[i] = (uint8_t)(i * 3);
	for (int k = 0; k < 100; k++)
		buf_record(&b, "s", dims, 1, "UInt8", f->model + 7 * k, 7);
	tmp = buf_to_tmpfile(&b);
	assert_int_equal(rename(tmp, f->path), 0);
	free(tmp);
	buf_free(&b);
	f->size = 700;
	open_tree(f);
	put(f, 300, 50, 4);
	assert_int_equal(entry_s(f)->orig->tensor.nextents, 100);
	assert_int_equal(entry_s(f)->stage_shift, 0);
	check_reads(f);
	check_committed(f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_slices_keep_their_alignment),
		T(test_writes_across_edges),
		T(test_truncate_and_extend),
		T(test_truncate_to_zero_then_write),
		T(test_truncate_first),
		T(test_random_edits),
		T(test_size_at_the_edges),
		T(test_many_slices_stay_contiguous),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
