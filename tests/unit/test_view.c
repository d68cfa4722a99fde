/*
 * test_view.c - the tree view of names (ckpt_view.h): the mapping name
 * <-> path (fixed cases, a round trip of random names made of dots, '%',
 * '/', control bytes and empty components, paths no name has), leaf
 * names, and the index: kinds, children of a directory, the %self case,
 * mkdir/rmdir, removing the last leaf, moving a directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt_view.h"

/* ---- the mapping ---------------------------------------------------------- */

static void check_path(const char *name, const char *want)
{
	char *p = ckpt_view_path(name, strlen(name)), *back = NULL;
	size_t len = 0;

	assert_non_null(p);
	assert_string_equal(p, want);
	assert_int_equal(ckpt_view_name(p, &back, &len), CKPT_OK);
	assert_int_equal(len, strlen(name));
	assert_memory_equal(back, name, len);
	free(back);
	free(p);
}

static void test_fixed_paths(void **state)
{
	(void)state;
	check_path("model.layers.0.attention.wq.weight",
		   "model/layers/0/attention/wq/weight");
	check_path("fc1", "fc1");
	check_path("", "%");
	check_path(".", "%2E");
	check_path("..", "%2E%2E");
	check_path(".a.b", "%2Ea/b");
	check_path("a.b.", "a/b%2E");
	check_path("a..b.c", "a%2E%2Eb/c");
	check_path("a...b", "a%2E%2E%2Eb");
	check_path("a/b.c%d", "a%2Fb/c%25d");
	check_path("x\ty.z", "x%09y/z");
	check_path("%self", "%25self");
}

static void check_no_name(const char *path)
{
	char *name = NULL;
	size_t len;

	assert_int_equal(ckpt_view_name(path, &name, &len), CKPT_ERR_INVAL);
	assert_null(name);
}

static void test_paths_without_name(void **state)
{
	(void)state;
	check_no_name("a.b");	 /* a '.' in a component is %2E */
	check_no_name("a//b");	 /* an empty component */
	check_no_name("a/");	 /* ... at the end */
	check_no_name("/a");	 /* ... at the start */
	check_no_name("");	 /* the root */
	check_no_name("a/%2Eb"); /* "a..b" is one component */
	check_no_name("a%2E/b"); /* "a..b" again */
	check_no_name("a/%2e");	 /* lower-case hex never maps back */
	check_no_name("%self");	 /* the self leaf is no path */
	check_no_name("a/%");	 /* the empty name is "%" alone */
	check_no_name("%41");	 /* "A" is shown as itself */
}

/* A random name of n bytes from an alphabet that makes every rule
 * matter. */
static void random_name(char *s, size_t n, unsigned *seed)
{
	static const char alpha[] = "..../%%abAB0\x01\x7f";

	for (size_t i = 0; i < n; i++)
		s[i] = alpha[(unsigned)rand_r(seed) % (sizeof(alpha) - 1)];
	s[n] = '\0';
}

static void test_random_round_trip(void **state)
{
	unsigned seed = 17;
	char name[24];

	(void)state;
	for (int k = 0; k < 20000; k++) {
		size_t n = (unsigned)rand_r(&seed) % (sizeof(name) - 1), len;
		char *p, *back = NULL;

		random_name(name, n, &seed);
		p = ckpt_view_path(name, n);
		assert_non_null(p);
		assert_int_equal(ckpt_view_name(p, &back, &len), CKPT_OK);
		assert_int_equal(len, n);
		assert_memory_equal(back, name, n);
		/* no component is empty, ".", ".." or holds a '.' */
		assert_null(strstr(p, "//"));
		assert_null(strchr(p, '.'));
		assert_true(*p && *p != '/' && p[strlen(p) - 1] != '/');
		free(back);
		free(p);
	}
}

/* Random paths: whatever decodes must encode back to the same path. */
static void test_random_paths(void **state)
{
	unsigned seed = 5;
	char path[16];

	(void)state;
	for (int k = 0; k < 20000; k++) {
		size_t n = 1 + (unsigned)rand_r(&seed) % (sizeof(path) - 2),
		       len;
		char *name = NULL, *again;

		random_name(path, n, &seed);
		if (ckpt_view_name(path, &name, &len) != CKPT_OK)
			continue;
		again = ckpt_view_path(name, len);
		assert_string_equal(again, path);
		free(again);
		free(name);
	}
}

static void test_under(void **state)
{
	(void)state;
	assert_true(ckpt_view_under("fc1.weight", 10, "fc1", 3));
	assert_true(ckpt_view_under("a.b.c", 5, "a.b", 3));
	assert_false(ckpt_view_under("fc1", 3, "fc1", 3));
	assert_false(ckpt_view_under("fc10.w", 6, "fc1", 3));
	assert_false(ckpt_view_under("fc1..w", 6, "fc1", 3));
	assert_false(ckpt_view_under("fc1.", 4, "fc1", 3));
	assert_false(ckpt_view_under("a..b", 4, "a.", 2));
}

static void test_leaf_names(void **state)
{
	char *s, *comp;
	bool self;

	(void)state;
	s = ckpt_view_leaf("weight", false);
	assert_string_equal(s, "weight");
	assert_int_equal(ckpt_view_leaf_parse(s, &comp, &self), CKPT_OK);
	assert_false(self);
	assert_string_equal(comp, "weight");
	free(comp);
	free(s);
	s = ckpt_view_leaf(NULL, true);
	assert_string_equal(s, CKPT_VIEW_SELF);
	assert_int_equal(ckpt_view_leaf_parse(s, &comp, &self), CKPT_OK);
	assert_true(self);
	assert_null(comp);
	free(s);
}

/* ---- the index ------------------------------------------------------------ */

static int setup(void **state)
{
	static const char *const names[] = {
		"model.layers.0.wq",
		"model.layers.0.wk",
		"model.layers.1.wq",
		"model.layers-x",
		"model.layers",
		"model.norm",
		"fc1",
		"fc1.weight",
		"fc1.bias",
		"fc10",
		"a..b",
		"",
		"model.layers.10.wq",
	};
	struct ckpt_view *v = ckpt_view_new();
	struct ckpt_error err = {0};

	assert_non_null(v);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		char *p = ckpt_view_path(names[i], strlen(names[i]));
		assert_int_equal(ckpt_view_add(v, p, &err), CKPT_OK);
		free(p);
	}
	*state = v;
	return 0;
}

static int teardown(void **state)
{
	ckpt_view_free(*state);
	return 0;
}

static bool add_child(void *ctx, const char *comp, size_t clen,
		      enum ckpt_view_kind kind)
{
	char *s = ctx;

	if (*s)
		strcat(s, " ");
	if (kind == CKPT_VIEW_SELFLEAF)
		strcat(s, CKPT_VIEW_SELF);
	else
		strncat(s, comp, clen);
	if (kind == CKPT_VIEW_DIR)
		strcat(s, "/");
	return true;
}

/* The children of dir, joined by ' ' (directories end in '/'). */
static const char *children(struct ckpt_view *v, const char *dir)
{
	static char s[1024];
	struct ckpt_error err = {0};

	s[0] = '\0';
	assert_int_equal(ckpt_view_children(v, dir, add_child, s, &err),
			 CKPT_OK);
	return s;
}

static void test_children(void **state)
{
	struct ckpt_view *v = *state;

	assert_string_equal(children(v, ""), "% a%2E%2Eb fc1/ fc10 model/");
	assert_string_equal(children(v, "model"), "layers/ layers-x norm");
	assert_string_equal(children(v, "model/layers"), "%self 0/ 1/ 10/");
	assert_string_equal(children(v, "model/layers/0"), "wk wq");
	assert_string_equal(children(v, "fc1"), "%self bias weight");
	assert_string_equal(children(v, "nope"), "");
}

static void test_kinds(void **state)
{
	struct ckpt_view *v = *state;

	assert_int_equal(ckpt_view_kind(v, ""), CKPT_VIEW_DIR);
	assert_int_equal(ckpt_view_kind(v, "fc1"), CKPT_VIEW_BOTH);
	assert_int_equal(ckpt_view_kind(v, "fc10"), CKPT_VIEW_LEAF);
	assert_int_equal(ckpt_view_kind(v, "model"), CKPT_VIEW_DIR);
	assert_int_equal(ckpt_view_kind(v, "model/layers/0/wq"),
			 CKPT_VIEW_LEAF);
	assert_int_equal(ckpt_view_kind(v, "model/lay"), CKPT_VIEW_NONE);
	assert_int_equal(ckpt_view_kind(v, "fc"), CKPT_VIEW_NONE);
}

static void test_mkdir_rmdir(void **state)
{
	struct ckpt_view *v = *state;
	struct ckpt_error err = {0};

	assert_int_equal(ckpt_view_mkdir(v, "fc10", &err), CKPT_ERR_EXISTS);
	assert_int_equal(ckpt_view_mkdir(v, "model", &err), CKPT_ERR_EXISTS);
	assert_int_equal(ckpt_view_mkdir(v, "new", &err), CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "new"), CKPT_VIEW_DIR);
	assert_int_equal(ckpt_view_mkdir(v, "new/sub", &err), CKPT_OK);
	assert_string_equal(children(v, "new"), "sub/");
	assert_string_equal(children(v, "new/sub"), "");
	assert_int_equal(ckpt_view_rmdir(v, "new", &err), CKPT_ERR_NOTEMPTY);
	assert_int_equal(ckpt_view_rmdir(v, "new/sub", &err), CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "new/sub"), CKPT_VIEW_NONE);
	assert_int_equal(ckpt_view_kind(v, "new"), CKPT_VIEW_DIR);
	assert_int_equal(ckpt_view_rmdir(v, "new", &err), CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "new"), CKPT_VIEW_NONE);
	assert_int_equal(ckpt_view_rmdir(v, "new", &err), CKPT_ERR_NOTFOUND);
	assert_int_equal(ckpt_view_rmdir(v, "fc10", &err), CKPT_ERR_NOTFOUND);
	/* its own parameter counts as a child */
	assert_int_equal(ckpt_view_remove(v, "fc1/weight", &err), CKPT_OK);
	assert_int_equal(ckpt_view_remove(v, "fc1/bias", &err), CKPT_OK);
	assert_string_equal(children(v, "fc1"), "%self");
	assert_int_equal(ckpt_view_rmdir(v, "fc1", &err), CKPT_ERR_NOTEMPTY);
	assert_int_equal(ckpt_view_remove(v, "fc1", &err), CKPT_OK);
	assert_int_equal(ckpt_view_rmdir(v, "fc1", &err), CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "fc1"), CKPT_VIEW_NONE);
}

/* Removing the last leaf leaves an empty directory, until rmdir. */
static void test_remove_keeps_dir(void **state)
{
	struct ckpt_view *v = *state;
	struct ckpt_error err = {0};

	assert_int_equal(ckpt_view_remove(v, "model/layers/0/wq", &err),
			 CKPT_OK);
	assert_int_equal(ckpt_view_remove(v, "model/layers/0/wq", &err),
			 CKPT_ERR_NOTFOUND);
	/* prepared: the parent's marker is there before the leaf goes */
	assert_int_equal(ckpt_view_prepare_remove(v, "model/layers/0/wk", &err),
			 CKPT_OK);
	assert_string_equal(children(v, "model/layers/0"), "wk");
	assert_int_equal(ckpt_view_remove(v, "model/layers/0/wk", &err),
			 CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "model/layers/0"), CKPT_VIEW_DIR);
	assert_string_equal(children(v, "model/layers/0"), "");
	assert_string_equal(children(v, "model/layers"), "%self 0/ 1/ 10/");
	assert_int_equal(ckpt_view_rmdir(v, "model/layers/0", &err), CKPT_OK);
	assert_string_equal(children(v, "model/layers"), "%self 1/ 10/");
	assert_int_equal(ckpt_view_add(v, "fc10", &err), CKPT_ERR_EXISTS);
}

static void test_move(void **state)
{
	struct ckpt_view *v = *state;
	struct ckpt_error err = {0};

	assert_int_equal(ckpt_view_move(v, "model/layers", "decoder", &err),
			 CKPT_OK);
	assert_string_equal(children(v, "decoder"), "%self 0/ 1/ 10/");
	assert_string_equal(children(v, "decoder/0"), "wk wq");
	/* the source's parent stays, with what did not move */
	assert_string_equal(children(v, "model"), "layers-x norm");
	assert_int_equal(ckpt_view_kind(v, "model/layers"), CKPT_VIEW_NONE);
	/* refusals change nothing */
	assert_int_equal(ckpt_view_move(v, "decoder", "fc10", &err),
			 CKPT_ERR_EXISTS);
	assert_int_equal(ckpt_view_move(v, "decoder", "fc1", &err),
			 CKPT_ERR_NOTEMPTY);
	assert_int_equal(ckpt_view_move(v, "decoder", "model", &err),
			 CKPT_ERR_NOTEMPTY);
	assert_int_equal(ckpt_view_move(v, "decoder", "decoder/0/x", &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_view_move(v, "nope", "x", &err),
			 CKPT_ERR_NOTFOUND);
	assert_string_equal(children(v, "decoder"), "%self 0/ 1/ 10/");
	/* onto an empty directory, which it replaces */
	assert_int_equal(ckpt_view_mkdir(v, "empty", &err), CKPT_OK);
	assert_int_equal(ckpt_view_move(v, "decoder/0", "empty", &err),
			 CKPT_OK);
	assert_string_equal(children(v, "empty"), "wk wq");
	assert_string_equal(children(v, "decoder"), "%self 1/ 10/");
	/* an emptied directory stays */
	assert_int_equal(ckpt_view_mkdir(v, "p", &err), CKPT_OK);
	assert_int_equal(ckpt_view_mkdir(v, "p/q", &err), CKPT_OK);
	assert_int_equal(ckpt_view_move(v, "p/q", "r", &err), CKPT_OK);
	assert_int_equal(ckpt_view_kind(v, "p"), CKPT_VIEW_DIR);
	assert_int_equal(ckpt_view_kind(v, "r"), CKPT_VIEW_DIR);
	assert_string_equal(children(v, "p"), "");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_paths),
		cmocka_unit_test(test_paths_without_name),
		cmocka_unit_test(test_random_round_trip),
		cmocka_unit_test(test_random_paths),
		cmocka_unit_test(test_under),
		cmocka_unit_test(test_leaf_names),
		T(test_children),
		T(test_kinds),
		T(test_mkdir_rmdir),
		T(test_remove_keeps_dir),
		T(test_move),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
