/*
 * test_tree.c - the editing semantics of a tree (ckpt_tree.h), without
 * FUSE or root: write, truncate, create, unlink, rename, dtype and shape
 * edits, scratch names, tombs, lookup counts and ids, commits and recovery
 * files, on small checkpoints built in a temporary directory.
 *
 * Every test starts from the same checkpoint, in this order:
 *   a  Float32 [2,2]  16 bytes 0x10..0x1f
 *   b  Int32   [3]    12 bytes 0x20..0x2b
 *   c  UInt8   [4]     4 bytes 0x30..0x33
 *   m  a map parameter of 2 rows
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"
#include "ckpt.h"
#include "ckpt_tree.h"

/* ---- the fixture ---------------------------------------------------------- */

struct fx {
	char dir[64];
	char path[PATH_MAX];
	struct ckpt_tree *t;
	struct buf orig; /* the file's bytes as written */
};

static uint8_t bytes_a[16], bytes_b[12], bytes_c[4];

static void build(struct buf *b)
{
	int64_t da[2] = {2, 2}, db[1] = {3}, dc[1] = {4};

	for (unsigned i = 0; i < sizeof(bytes_a); i++)
		bytes_a[i] = (uint8_t)(0x10 + i);
	for (unsigned i = 0; i < sizeof(bytes_b); i++)
		bytes_b[i] = (uint8_t)(0x20 + i);
	for (unsigned i = 0; i < sizeof(bytes_c); i++)
		bytes_c[i] = (uint8_t)(0x30 + i);
	memset(b, 0, sizeof(*b));
	buf_record(b, "a", da, 2, "Float32", bytes_a, sizeof(bytes_a));
	buf_record(b, "b", db, 1, "Int32", bytes_b, sizeof(bytes_b));
	buf_record(b, "c", dc, 1, "UInt8", bytes_c, sizeof(bytes_c));
	buf_small_map(b, "m");
}

static struct ckpt_tree *open_tree(struct fx *f,
				   const struct ckpt_tree_opts *opts)
{
	struct ckpt_error err = {0};
	struct ckpt_tree *t = NULL;
	ckpt_err rc = ckpt_tree_open(f->path, opts, &t, &err);

	if (rc)
		fail_msg("ckpt_tree_open: %s", err.msg);
	return t;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *tmp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ckpt-tree-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/net.ckpt", f->dir);
	build(&f->orig);
	tmp = buf_to_tmpfile(&f->orig);
	if (rename(tmp, f->path) != 0) /* both in /tmp */
		fail_msg("rename into %s: %s", f->dir, strerror(errno));
	free(tmp);
	f->t = open_tree(f, NULL);
	*state = f;
	return 0;
}

static void rm_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	if (strncmp(dir, "/tmp/ckpt-tree-", 15) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ckpt_tree_close(f->t);
	rm_dir(f->dir);
	buf_free(&f->orig);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* The id of name in the root, counting one lookup; 0 if there is none. */
static uint64_t look(struct ckpt_tree *t, const char *name)
{
	struct ckpt_error err = {0};
	uint64_t id = 0;

	if (ckpt_tree_lookup(t, 0, name, &id, &err) != CKPT_OK)
		return 0;
	return id;
}

static struct ckpt_entry_info info_of(struct ckpt_tree *t, uint64_t id)
{
	struct ckpt_entry_info info;
	struct ckpt_error err = {0};

	memset(&info, 0, sizeof(info));
	if (ckpt_tree_stat(t, id, &info, &err) != CKPT_OK)
		fail_msg("stat of %llu: %s", (unsigned long long)id, err.msg);
	return info;
}

static void check_info(struct ckpt_tree *t, uint64_t id, uint64_t size,
		       const char *dtype, const char *shape, bool explicit_)
{
	struct ckpt_entry_info info = info_of(t, id);

	assert_int_equal(info.kind, CKPT_ENTRY_FILE);
	assert_int_equal(info.size, size);
	assert_string_equal(info.dtype, dtype);
	assert_string_equal(info.shape, shape);
	assert_int_equal(info.shape_explicit, explicit_);
}

/* Reads all of id (at most cap bytes) into buf; returns the count. */
static size_t read_all(struct ckpt_tree *t, uint64_t id, void *buf, size_t cap)
{
	struct ckpt_error err = {0};
	size_t done = 0;

	if (ckpt_tree_read(t, id, buf, cap, 0, &done, &err) != CKPT_OK)
		fail_msg("read of %llu: %s", (unsigned long long)id, err.msg);
	return done;
}

static void ok(ckpt_err rc, const struct ckpt_error *err)
{
	if (rc != CKPT_OK)
		fail_msg("%s: %s", ckpt_strerror(rc), err->msg);
}

static void put(struct ckpt_tree *t, uint64_t id, const void *buf, size_t n,
		uint64_t off)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_write(t, id, buf, n, off, &err), &err);
}

static void set_shape(struct ckpt_tree *t, uint64_t id, const char *shape)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_set_shape(t, id, shape, strlen(shape), &err), &err);
}

static void set_dtype(struct ckpt_tree *t, uint64_t id, const char *dtype)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_set_dtype(t, id, dtype, strlen(dtype), &err), &err);
}

static uint64_t create(struct ckpt_tree *t, const char *name)
{
	struct ckpt_error err = {0};
	uint64_t id = 0;

	ok(ckpt_tree_create(t, name, &id, &err), &err);
	assert_true(ckpt_tree_id_is_entry(id));
	return id;
}

static void commit(struct ckpt_tree *t)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_commit(t, &err), &err);
}

struct names {
	char list[16][64];
	uint64_t ids[16];
	size_t n;
};

static bool add_name(void *ctx, const char *name, uint64_t id,
		     const struct ckpt_entry_info *info, size_t next)
{
	struct names *nm = ctx;

	(void)info;
	(void)next;
	if (nm->n == 16)
		return false;
	snprintf(nm->list[nm->n], sizeof(nm->list[0]), "%s", name);
	nm->ids[nm->n++] = id;
	return true;
}

/* The root's names in order, joined by ' '. */
static char *order(struct ckpt_tree *t)
{
	static char s[1024];
	struct names nm = {0};

	ckpt_tree_list(t, 0, 0, add_name, &nm, false);
	s[0] = '\0';
	for (size_t i = 0; i < nm.n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, nm.list[i]);
	}
	return s;
}

/* The parameters of the checkpoint at path, as "name:dtype:shape" joined
 * by ' '. */
static char *file_params(const char *path, struct ckpt_file **out)
{
	static char s[2048];
	struct ckpt_error err = {0};
	struct ckpt_file *f = NULL;
	char shape[128];

	ok(ckpt_open(path, NULL, &f, &err), &err);
	s[0] = '\0';
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (i)
			strcat(s, " ");
		strcat(s, p->name);
		if (p->kind == CKPT_PARAM_MAP) {
			strcat(s, ":map");
			continue;
		}
		ckpt_shape_format(p->tensor.dims, p->tensor.ndims, shape,
				  sizeof(shape));
		snprintf(s + strlen(s), sizeof(s) - strlen(s), ":%s:%s",
			 ckpt_dtype_name(p->tensor.dtype), shape);
	}
	if (out)
		*out = f;
	else
		ckpt_close(f);
	return s;
}

/* The bytes of parameter name of f equal want (n bytes). */
static void check_param_bytes(struct ckpt_file *f, const char *name,
			      const void *want, size_t n)
{
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		uint8_t *got;
		if (strcmp(p->name, name) != 0)
			continue;
		assert_int_equal(p->tensor.size, n);
		got = read_tensor(f, &p->tensor);
		assert_memory_equal(got, want, n);
		free(got);
		return;
	}
	fail_msg("no parameter %s", name);
}

/* The checkpoint file still holds the bytes setup wrote. */
static void check_untouched(const struct fx *f)
{
	struct buf now = {0};

	assert_true(buf_read_file(&now, f->path));
	assert_int_equal(now.len, f->orig.len);
	assert_memory_equal(now.p, f->orig.p, now.len);
	buf_free(&now);
}

/* ---- opening and reading ---------------------------------------------------- */

static void test_open_shows_params(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree *t = f->t;

	assert_int_equal(ckpt_tree_count(t), 4);
	assert_string_equal(order(t), "a b c m");
	assert_null(ckpt_tree_read_only(t));
	assert_false(ckpt_tree_dirty(t));
	check_info(t, look(t, "a"), 16, "Float32", "[2,2]", true);
	check_info(t, look(t, "b"), 12, "Int32", "[3]", true);
	check_info(t, look(t, "c"), 4, "UInt8", "[4]", true);
	assert_int_equal(info_of(t, look(t, "m")).kind, CKPT_ENTRY_DIR);
	assert_int_equal(look(t, "nothing"), 0);
}

static void test_read_ranges(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");
	uint8_t buf[32];
	size_t done = 1;

	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, bytes_a, 16);
	ok(ckpt_tree_read(f->t, a, buf, 4, 6, &done, &err), &err);
	assert_int_equal(done, 4);
	assert_memory_equal(buf, bytes_a + 6, 4);
	ok(ckpt_tree_read(f->t, a, buf, 4, 16, &done, &err), &err);
	assert_int_equal(done, 0);
	assert_int_equal(ckpt_tree_read(f->t, 4000, buf, 4, 0, &done, &err),
			 CKPT_ERR_NOTFOUND);
}

/* ---- bytes ------------------------------------------------------------------ */

static void test_write_whole(void **state)
{
	struct fx *f = *state;
	uint64_t a = look(f->t, "a");
	uint8_t data[16], buf[32];

	memset(data, 0xab, sizeof(data));
	put(f->t, a, data, sizeof(data), 0);
	assert_true(ckpt_tree_dirty(f->t));
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, data, 16);
	check_info(f->t, a, 16, "Float32", "[2,2]", true);
}

static void test_partial_write(void **state)
{
	struct fx *f = *state;
	uint64_t a = look(f->t, "a");
	uint8_t want[16], buf[32];
	const uint8_t patch[3] = {1, 2, 3};

	memcpy(want, bytes_a, 16);
	memcpy(want + 5, patch, 3);
	put(f->t, a, patch, sizeof(patch), 5);
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, want, 16);
}

static void test_write_extends(void **state)
{
	struct fx *f = *state;
	uint64_t c = look(f->t, "c");
	uint8_t buf[32], want[8] = {0x30, 0x31, 0x32, 0x33, 0, 0, 9, 9};
	const uint8_t tail[2] = {9, 9};

	put(f->t, c, tail, sizeof(tail), 6); /* a hole of 2 zero bytes */
	assert_int_equal(read_all(f->t, c, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, want, 8);
	assert_int_equal(info_of(f->t, c).size, 8);
}

static void test_truncate_shrink(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");
	uint8_t buf[32];

	ok(ckpt_tree_truncate(f->t, a, 8, &err), &err);
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, bytes_a, 8);
	assert_true(ckpt_tree_dirty(f->t));
}

static void test_truncate_extend_zeros(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t b = look(f->t, "b");
	uint8_t buf[32], zero[8] = {0};

	ok(ckpt_tree_truncate(f->t, b, 20, &err), &err);
	assert_int_equal(read_all(f->t, b, buf, sizeof(buf)), 20);
	assert_memory_equal(buf, bytes_b, 12);
	assert_memory_equal(buf + 12, zero, 8);
}

static void test_truncate_to_zero(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");
	uint8_t buf[32];

	put(f->t, a, "xy", 2, 0); /* staged first: the file is replaced */
	ok(ckpt_tree_truncate(f->t, a, 0, &err), &err);
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 0);
	assert_int_equal(info_of(f->t, a).size, 0);
	put(f->t, a, "z", 1, 3);
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "\0\0\0z", 4);
}

static void test_truncate_same_size_is_no_change(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};

	ok(ckpt_tree_truncate(f->t, look(f->t, "b"), 12, &err), &err);
	assert_false(ckpt_tree_dirty(f->t));
}

/* ---- names ------------------------------------------------------------------ */

static void test_create(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t id = create(f->t, "new"), again = 0;

	assert_string_equal(order(f->t), "a b c m new");
	check_info(f->t, id, 0, "UInt8", "[0]", false);
	assert_int_equal(look(f->t, "new"), id);
	assert_true(ckpt_tree_dirty(f->t));
	assert_int_equal(ckpt_tree_create(f->t, "new", &again, &err),
			 CKPT_ERR_EXISTS);
	assert_int_equal(ckpt_tree_create(f->t, "bad%zz", &again, &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_tree_create(f->t, "\xff", &again, &err),
			 CKPT_ERR_INVAL); /* not UTF-8 */
	assert_non_null(strstr(err.msg, "UTF-8"));
	assert_int_equal(ckpt_tree_count(f->t), 5);
}

static void test_inferred_shape_after_writes(void **state)
{
	struct fx *f = *state;
	uint64_t id = create(f->t, "v");
	uint8_t data[12] = {0};

	put(f->t, id, data, sizeof(data), 0);
	check_info(f->t, id, 12, "UInt8", "[12]", false);
	set_dtype(f->t, id, "float32");
	check_info(f->t, id, 12, "Float32", "[3]", false);
	put(f->t, id, data, 4, 12);
	check_info(f->t, id, 16, "Float32", "[4]", false);
}

static void test_rename(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t b = look(f->t, "b");

	ok(ckpt_tree_rename(f->t, "b", "bee", false, &err), &err);
	assert_string_equal(order(f->t), "a bee c m"); /* keeps its place */
	assert_int_equal(look(f->t, "b"), 0);
	assert_int_equal(look(f->t, "bee"), b); /* the id stays */
	check_info(f->t, b, 12, "Int32", "[3]", true);
	assert_true(ckpt_tree_dirty(f->t));
	assert_int_equal(ckpt_tree_rename(f->t, "nope", "x", false, &err),
			 CKPT_ERR_NOTFOUND);
}

static void test_rename_over_existing(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t c = look(f->t, "c");
	uint8_t buf[32];

	ok(ckpt_tree_rename(f->t, "c", "a", false, &err), &err);
	/* c takes the place of the a it replaced, with its own bytes */
	assert_string_equal(order(f->t), "a b m");
	assert_int_equal(look(f->t, "a"), c);
	assert_int_equal(read_all(f->t, c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, bytes_c, 4);
	check_info(f->t, c, 4, "UInt8", "[4]", true);
	assert_int_equal(ckpt_tree_count(f->t), 3);
}

static void test_rename_noreplace(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a"), b = look(f->t, "b");

	assert_int_equal(ckpt_tree_rename(f->t, "a", "b", true, &err),
			 CKPT_ERR_EXISTS);
	assert_int_equal(look(f->t, "a"), a);
	assert_int_equal(look(f->t, "b"), b);
	assert_string_equal(order(f->t), "a b c m");
	assert_false(ckpt_tree_dirty(f->t));
}

static void test_maps_read_only(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t m = look(f->t, "m"), keys = 0;
	uint8_t buf[64];
	size_t done = 0;

	ok(ckpt_tree_lookup(f->t, m, "keys", &keys, &err), &err);
	assert_int_equal(keys, m + 1);
	assert_int_equal(ckpt_tree_id_map_of(keys), m);
	ok(ckpt_tree_read(f->t, keys, buf, sizeof(buf), 0, &done, &err), &err);
	assert_int_equal(done, 16);
	assert_int_equal(ckpt_tree_read(f->t, m, buf, 4, 0, &done, &err),
			 CKPT_ERR_ISDIR);
	assert_int_equal(ckpt_tree_write(f->t, keys, buf, 4, 0, &err),
			 CKPT_ERR_PERM);
	assert_int_equal(ckpt_tree_unlink(f->t, "m", &err), CKPT_ERR_PERM);
	assert_non_null(strstr(err.msg, "'m' is a map parameter"));
	assert_int_equal(ckpt_tree_rename(f->t, "m", "x", false, &err),
			 CKPT_ERR_PERM);
	assert_int_equal(ckpt_tree_rename(f->t, "a", "m", false, &err),
			 CKPT_ERR_PERM);
	assert_non_null(strstr(err.msg, "'m' is a map parameter"));
	assert_string_equal(order(f->t), "a b c m");
	assert_false(ckpt_tree_dirty(f->t));
}

/* ---- deletion, lookup counts and ids ------------------------------------- */

static void test_unlink_while_held(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_entry_info info;
	uint64_t a = look(f->t, "a"), n, p; /* one lookup of a */
	uint8_t buf[32];

	ok(ckpt_tree_unlink(f->t, "a", &err), &err);
	assert_int_equal(look(f->t, "a"), 0);
	assert_string_equal(order(f->t), "b c m");
	assert_true(ckpt_tree_dirty(f->t));
	/* the id still reads as it was: the kernel may hold it open */
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, bytes_a, 16);
	n = create(f->t, "n");
	assert_true(n != a); /* not reused while a lookup is held */
	ckpt_tree_forget(f->t, a, 1);
	assert_int_equal(ckpt_tree_stat(f->t, a, &info, &err),
			 CKPT_ERR_NOTFOUND);
	p = create(f->t, "p");
	assert_int_equal(p, a); /* the freed id, reused only now */
	check_info(f->t, p, 0, "UInt8", "[0]", false);
}

static void test_unlink_unheld_frees_at_once(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_entry_info info;
	struct names nm = {0};

	ckpt_tree_list(f->t, 0, 0, add_name, &nm, false); /* counts nothing */
	assert_string_equal(nm.list[1], "b");
	ok(ckpt_tree_unlink(f->t, "b", &err), &err);
	assert_int_equal(ckpt_tree_stat(f->t, nm.ids[1], &info, &err),
			 CKPT_ERR_NOTFOUND);
	assert_int_equal(ckpt_tree_unlink(f->t, "b", &err), CKPT_ERR_NOTFOUND);
}

static void test_lookup_counts_exact(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_entry_info info;
	struct names nm = {0};
	uint64_t c;

	ckpt_tree_list(f->t, 0, 0, add_name, &nm, true); /* one each */
	c = look(f->t, "c");				 /* c: two */
	assert_int_equal(nm.ids[2], c);
	ok(ckpt_tree_unlink(f->t, "c", &err), &err);
	ckpt_tree_forget(f->t, c, 1);
	ok(ckpt_tree_stat(f->t, c, &info, &err), &err); /* one left */
	ckpt_tree_forget(f->t, c + 1, 1); /* no map tensor: ignored */
	ckpt_tree_forget(f->t, 4000, 1);  /* no such id: ignored */
	ok(ckpt_tree_stat(f->t, c, &info, &err), &err);
	ckpt_tree_forget(f->t, c, 1);
	assert_int_equal(ckpt_tree_stat(f->t, c, &info, &err),
			 CKPT_ERR_NOTFOUND);
	/* live entries are never freed by forgets */
	ckpt_tree_forget(f->t, nm.ids[0], 1);
	ok(ckpt_tree_stat(f->t, nm.ids[0], &info, &err), &err);
}

static void test_over_forget(void **state)
{
#ifdef NDEBUG
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_entry_info info;
	uint64_t b = look(f->t, "b");

	ok(ckpt_tree_unlink(f->t, "b", &err), &err);
	ckpt_tree_forget(f->t, b, 5); /* release builds: clamped to zero */
	assert_int_equal(ckpt_tree_stat(f->t, b, &info, &err),
			 CKPT_ERR_NOTFOUND);
#else /* debug builds: an assertion failure, seen from a child */
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t b = look(f->t, "b");
	int status = 0;
	pid_t pid;

	ok(ckpt_tree_unlink(f->t, "b", &err), &err);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO); /* the assertion's message */
		ckpt_tree_forget(f->t, b, 5);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
#endif
}

/* ---- dtype and shape -------------------------------------------------------- */

static void test_set_dtype(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");

	set_dtype(f->t, a, "int32"); /* numpy spelling */
	check_info(f->t, a, 16, "Int32", "[2,2]", true);
	assert_true(ckpt_tree_dirty(f->t));
	set_dtype(f->t, a, "Float16\n"); /* as echo writes it */
	check_info(f->t, a, 16, "Float16", "[2,2]", true);
	assert_int_equal(ckpt_tree_set_dtype(f->t, a, "float99", 7, &err),
			 CKPT_ERR_INVAL);
	assert_non_null(strstr(err.msg, "float99"));
	check_info(f->t, a, 16, "Float16", "[2,2]", true);
}

static void test_set_shape(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");

	set_shape(f->t, a, "4");
	check_info(f->t, a, 16, "Float32", "[4]", true);
	set_shape(f->t, a, "[1, 4]");
	check_info(f->t, a, 16, "Float32", "[1,4]", true);
	assert_int_equal(ckpt_tree_set_shape(f->t, a, "[2,x]", 5, &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_tree_set_shape(f->t, a, "[0]", 3, &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_tree_set_shape(f->t, a, "[4294967296,4294967296]",
					     23, &err),
			 CKPT_ERR_INVAL); /* more than 2^64 bytes */
	check_info(f->t, a, 16, "Float32", "[1,4]", true);
}

static void test_clear_shape(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");

	ok(ckpt_tree_clear_shape(f->t, a, &err), &err);
	check_info(f->t, a, 16, "Float32", "[4]", false);
	assert_true(ckpt_tree_dirty(f->t));
	assert_int_equal(ckpt_tree_clear_shape(f->t, look(f->t, "m"), &err),
			 CKPT_ERR_PERM);
}

/* ---- scratch names and tombs ------------------------------------------------ */

static void test_scratch_not_committed(void **state)
{
	struct fx *f = *state;
	uint64_t s = create(f->t, ".a.swp"), b = look(f->t, "b");

	assert_true(ckpt_tree_is_scratch(f->t, s));
	assert_false(ckpt_tree_is_scratch(f->t, b));
	put(f->t, s, "swap", 4, 0);
	assert_false(ckpt_tree_dirty(f->t)); /* scratch files change nothing */
	set_dtype(f->t, b, "UInt32");
	commit(f->t);
	assert_string_equal(file_params(f->path, NULL),
			    "a:Float32:[2,2] b:UInt32:[3] c:UInt8:[4] m:map");
	assert_int_equal(look(f->t, ".a.swp"), s); /* still in the tree */
}

static void test_tomb_inherits(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t id;
	uint8_t data[20] = {0};

	ok(ckpt_tree_unlink(f->t, "a", &err), &err);
	id = create(f->t, "a");				/* rm a; cp x a */
	assert_string_equal(order(f->t), "a b c m");	/* a's old place */
	check_info(f->t, id, 0, "UInt8", "[0]", false); /* does not fit */
	put(f->t, id, data, 16, 0);
	check_info(f->t, id, 16, "Float32", "[2,2]", true);
	put(f->t, id, data, 4, 16);
	check_info(f->t, id, 20, "UInt8", "[20]", false);
}

static void test_tomb_of_scratch_rename(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t old = look(f->t, "b"), id;
	uint8_t data[12] = {0};

	/* vim: the parameter goes to a backup name, a new file replaces it */
	ok(ckpt_tree_rename(f->t, "b", "b~", false, &err), &err);
	assert_true(ckpt_tree_is_scratch(f->t, old));
	id = create(f->t, "b");
	assert_false(ckpt_tree_is_scratch(f->t, id));
	put(f->t, id, data, sizeof(data), 0);
	check_info(f->t, id, 12, "Int32", "[3]", true);
	/* the new b takes the old one's place; the backup stays where it
	 * was, after it */
	assert_string_equal(order(f->t), "a b b~ c m");
	commit(f->t);
	assert_string_equal(file_params(f->path, NULL),
			    "a:Float32:[2,2] b:Int32:[3] c:UInt8:[4] m:map");
}

/* ---- commits and recovery --------------------------------------------------- */

static void test_commit_reopen(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_file *cf = NULL;
	uint64_t a = look(f->t, "a"), d;
	uint8_t wa[16], wd[8], buf[32];

	memset(wa, 0x5a, sizeof(wa));
	for (unsigned i = 0; i < sizeof(wd); i++)
		wd[i] = (uint8_t)(0x70 + i);
	put(f->t, a, wa, sizeof(wa), 0);
	set_dtype(f->t, look(f->t, "b"), "UInt32");
	ok(ckpt_tree_rename(f->t, "c", "x%2Fc", false, &err), &err);
	d = create(f->t, "d");
	put(f->t, d, wd, sizeof(wd), 0);
	set_shape(f->t, d, "[2,4]");
	commit(f->t);
	assert_false(ckpt_tree_dirty(f->t));
	assert_string_equal(file_params(f->path, &cf),
			    "a:Float32:[2,2] b:UInt32:[3] x/c:UInt8:[4] m:map "
			    "d:UInt8:[2,4]");
	check_param_bytes(cf, "a", wa, sizeof(wa));
	check_param_bytes(cf, "b", bytes_b, sizeof(bytes_b));
	check_param_bytes(cf, "x/c", bytes_c, sizeof(bytes_c));
	check_param_bytes(cf, "d", wd, sizeof(wd));
	ckpt_close(cf);
	/* the tree goes on, on the new file */
	assert_int_equal(read_all(f->t, a, buf, sizeof(buf)), 16);
	assert_memory_equal(buf, wa, 16);
	assert_int_equal(look(f->t, "d"), d);
	check_info(f->t, d, 8, "UInt8", "[2,4]", true);
}

static void test_commit_refuses_misfit(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t a = look(f->t, "a");

	set_shape(f->t, a, "[3]"); /* 12 bytes for 16 */
	assert_int_equal(ckpt_tree_commit(f->t, &err), CKPT_ERR_INVAL);
	assert_non_null(strstr(err.msg, "'a'"));
	assert_int_equal(err.hint, CKPT_HINT_FIX_SHAPE);
	check_untouched(f);
	assert_true(ckpt_tree_dirty(f->t));
	set_shape(f->t, a, "[4]"); /* fixed: it commits */
	commit(f->t);
	assert_string_equal(file_params(f->path, NULL),
			    "a:Float32:[4] b:Int32:[3] c:UInt8:[4] m:map");
}

static void test_commit_refuses_empty(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};

	create(f->t, "empty");
	assert_int_equal(ckpt_tree_commit(f->t, &err), CKPT_ERR_INVAL);
	assert_non_null(strstr(err.msg, "empty"));
	ok(ckpt_tree_unlink(f->t, "empty", &err), &err);
}

static void test_save_recovery(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	struct ckpt_file *rf = NULL;
	char *path = NULL, *lost = NULL;
	uint64_t a = look(f->t, "a"), n;
	uint8_t w[5] = {1, 2, 3, 4, 5};

	put(f->t, a, w, sizeof(w), 0);
	set_shape(f->t, look(f->t, "b"), "[5]"); /* does not fit */
	ok(ckpt_tree_unlink(f->t, "c", &err), &err);
	n = create(f->t, "n");
	put(f->t, n, w, sizeof(w), 0);
	ok(ckpt_tree_save_recovery(f->t, &path, &lost, &err), &err);
	assert_non_null(path);
	assert_null(lost);
	assert_string_not_equal(path, f->path);
	/* every edit; the misfit as the bytes it holds */
	assert_string_equal(file_params(path, &rf),
			    "a:Float32:[2,2] b:Int32:[3] m:map n:UInt8:[5]");
	{
		uint8_t wa[16];
		memcpy(wa, bytes_a, 16);
		memcpy(wa, w, sizeof(w));
		check_param_bytes(rf, "a", wa, sizeof(wa));
	}
	check_param_bytes(rf, "n", w, sizeof(w));
	ckpt_close(rf);
	unlink(path);
	free(path);
	/* the target is untouched and the tree still pending */
	assert_true(ckpt_tree_dirty(f->t));
	check_untouched(f);
}

static void test_read_only_refuses(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts opts = {.read_only = true};
	struct ckpt_error err = {0};
	struct ckpt_tree *t;
	uint64_t id = 0;

	ckpt_tree_close(f->t); /* one writer at a time */
	f->t = NULL;
	t = open_tree(f, &opts);
	f->t = t;
	assert_non_null(ckpt_tree_read_only(t));
	assert_int_equal(ckpt_tree_write(t, look(t, "a"), "x", 1, 0, &err),
			 CKPT_ERR_READONLY);
	assert_non_null(strstr(err.msg, "read-only"));
	assert_int_equal(ckpt_tree_create(t, "x", &id, &err),
			 CKPT_ERR_READONLY);
	assert_int_equal(ckpt_tree_unlink(t, "a", &err), CKPT_ERR_READONLY);
	assert_int_equal(ckpt_tree_rename(t, "a", "z", false, &err),
			 CKPT_ERR_READONLY);
	assert_int_equal(ckpt_tree_set_shape(t, look(t, "a"), "4", 1, &err),
			 CKPT_ERR_READONLY);
	assert_string_equal(order(t), "a b c m");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_shows_params),
		T(test_read_ranges),
		T(test_write_whole),
		T(test_partial_write),
		T(test_write_extends),
		T(test_truncate_shrink),
		T(test_truncate_extend_zeros),
		T(test_truncate_to_zero),
		T(test_truncate_same_size_is_no_change),
		T(test_create),
		T(test_inferred_shape_after_writes),
		T(test_rename),
		T(test_rename_over_existing),
		T(test_rename_noreplace),
		T(test_maps_read_only),
		T(test_unlink_while_held),
		T(test_unlink_unheld_frees_at_once),
		T(test_lookup_counts_exact),
		T(test_over_forget),
		T(test_set_dtype),
		T(test_set_shape),
		T(test_clear_shape),
		T(test_scratch_not_committed),
		T(test_tomb_inherits),
		T(test_tomb_of_scratch_rename),
		T(test_commit_reopen),
		T(test_commit_refuses_misfit),
		T(test_commit_refuses_empty),
		T(test_save_recovery),
		T(test_read_only_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
