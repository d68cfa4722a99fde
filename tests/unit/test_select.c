/*
 * test_select.c - selection and renaming (select.c, ckpt_tree.h): the
 * include/exclude rule, hidden parameters (not listed, not found, not
 * counted, their names taken, written unchanged by every commit),
 * dropping them (ckpt convert --exclude) and ckpt_tree_rename_all: the
 * new names, collisions (named both), no partial result on any failure;
 * ckpt_tree_rename_prefix (whole components, the target not empty).
 *
 * Every test starts from the same checkpoint, in this order:
 *   net.w          Float32 [2,2]  16 bytes
 *   net.b          Float32 [2]     8 bytes
 *   moments.net.w  Float32 [2,2]  16 bytes
 *   moments.net.b  Float32 [2]     8 bytes
 *   step           Int32   []      4 bytes
 *   m              a map parameter of 2 rows
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* ---- the fixture ---------------------------------------------------------- */

enum {
	NPARAMS = 6
};

static const char *const names[NPARAMS] = {
	"net.w", "net.b", "moments.net.w", "moments.net.b", "step", "m"};

struct fx {
	char dir[64];
	char path[PATH_MAX];
	char out[PATH_MAX];
	struct ckpt_tree *t;
	struct buf orig;
};

/* The bytes of parameter i (not the map): 0x10 * (i + 1) + k. */
static void param_bytes(int i, uint8_t *b, size_t n)
{
	for (size_t k = 0; k < n; k++)
		b[k] = (uint8_t)(0x10 * (i + 1) + (int)k);
}

static void build(struct buf *b)
{
	int64_t d22[2] = {2, 2}, d2[1] = {2};
	uint8_t w[16];

	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 4; i++) {
		bool mat = i % 2 == 0;
		param_bytes(i, w, mat ? 16 : 8);
		buf_record(b, names[i], mat ? d22 : d2, mat ? 2 : 1, "Float32",
			   w, mat ? 16 : 8);
	}
	param_bytes(4, w, 4);
	buf_record(b, "step", NULL, 0, "Int32", w, 4);
	buf_small_map(b, "m");
}

static void ok(ckpt_err rc, const struct ckpt_error *err)
{
	if (rc != CKPT_OK)
		fail_msg("%s: %s", ckpt_strerror(rc), err->msg);
}

static const char *const exclude_moments[] = {"moments.*", NULL};

static struct ckpt_tree *open_tree(struct fx *f,
				   const struct ckpt_tree_opts *opts)
{
	struct ckpt_error err = {0};
	struct ckpt_tree *t = NULL;

	ok(ckpt_tree_open(f->path, opts, &t, &err), &err);
	return t;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *tmp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ckpt-select-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/train.ckpt", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out.ckpt", f->dir);
	build(&f->orig);
	tmp = buf_to_tmpfile(&f->orig);
	if (rename(tmp, f->path) != 0) /* both in /tmp */
		fail_msg("rename into %s: %s", f->dir, strerror(errno));
	free(tmp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[PATH_MAX + 16];

	ckpt_tree_close(f->t);
	if (strncmp(f->dir, "/tmp/ckpt-select-", 17) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->dir);
	}
	buf_free(&f->orig);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static uint64_t look(struct ckpt_tree *t, const char *name)
{
	struct ckpt_error err = {0};
	uint64_t id = 0;

	if (ckpt_tree_lookup(t, 0, name, &id, &err) != CKPT_OK)
		return 0;
	return id;
}

static bool add_name(void *ctx, const char *name, uint64_t id,
		     const struct ckpt_entry_info *info, size_t next)
{
	char *s = ctx;

	(void)id;
	(void)info;
	(void)next;
	if (*s)
		strcat(s, " ");
	strcat(s, name);
	return true;
}

/* The root's names in order, joined by ' '. */
static char *order(struct ckpt_tree *t)
{
	static char s[1024];

	s[0] = '\0';
	ckpt_tree_list(t, 0, 0, add_name, s, false);
	return s;
}

/* The parameter names of the file at path, in order, joined by ' '. */
static char *file_names(const char *path)
{
	static char s[1024];
	struct ckpt_error err = {0};
	struct ckpt_file *f = NULL;

	ok(ckpt_open(path, NULL, &f, &err), &err);
	s[0] = '\0';
	for (size_t i = 0; i < ckpt_count(f); i++) {
		if (i)
			strcat(s, " ");
		strcat(s, ckpt_param_at(f, i)->name);
	}
	ckpt_close(f);
	return s;
}

/* The parameters of the file at path hold what build() wrote, under
 * their names in *got (got[i] = the name parameter i of build() has
 * there, NULL: absent), except those whose index is set in skip. */
static void check_file_bytes(const char *path, const char *const *got,
			     unsigned skip)
{
	struct ckpt_error err = {0};
	struct ckpt_file *f = NULL;
	uint8_t want[16];

	ok(ckpt_open(path, NULL, &f, &err), &err);
	for (int i = 0; i < 5; i++) {
		ssize_t k;
		const struct ckpt_param *p;
		uint8_t *data;
		size_t n = i == 4 ? 4 : i % 2 == 0 ? 16 : 8;
		if (!got[i] || (skip & (1u << i)))
			continue;
		k = ckpt_find(f, got[i]);
		if (k < 0)
			fail_msg("%s: no %s", path, got[i]);
		p = ckpt_param_at(f, (size_t)k);
		assert_int_equal(p->tensor.size, n);
		param_bytes(i, want, n);
		data = read_tensor(f, &p->tensor);
		assert_memory_equal(data, want, n);
		free(data);
	}
	ckpt_close(f);
}

static void commit(struct ckpt_tree *t)
{
	struct ckpt_error err = {0};

	ok(ckpt_tree_commit(t, &err), &err);
}

/* ---- the rule ------------------------------------------------------------- */

static void test_keep_rule(void **state)
{
	const char *const none[] = {NULL};
	const char *const net[] = {"net.*", "step", NULL};
	const char *const mom[] = {"moments.*", NULL};
	const char *const br[] = {"[ab]?", NULL};
	const char *const star[] = {"*", NULL};

	(void)state;
	assert_true(ckpt_select_keep(NULL, NULL, "x"));
	assert_true(ckpt_select_keep(none, none, "x"));
	assert_true(ckpt_select_keep(net, NULL, "net.w"));
	assert_true(ckpt_select_keep(net, NULL, "step"));
	assert_false(ckpt_select_keep(net, NULL, "steps"));
	assert_false(ckpt_select_keep(net, NULL, "moments.net.w"));
	assert_false(ckpt_select_keep(NULL, mom, "moments.net.w"));
	assert_true(ckpt_select_keep(NULL, mom, "net.moments.w"));
	/* no flags: '*' matches '/' and a leading '.' */
	assert_false(ckpt_select_keep(NULL, mom, "moments./a/b"));
	assert_true(ckpt_select_keep(star, NULL, ".hidden/x"));
	assert_true(ckpt_select_keep(br, NULL, "a1"));
	assert_false(ckpt_select_keep(br, NULL, "c1"));
	/* an exclude wins over an include */
	assert_false(ckpt_select_keep(star, mom, "moments.x"));
	assert_true(ckpt_select_keep(star, mom, "x"));
}

/* ---- hidden parameters -------------------------------------------------- */

static void test_hidden_not_shown(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.exclude = exclude_moments};
	struct ckpt_entry_info info;
	struct ckpt_error err = {0};
	uint8_t buf[16];
	size_t done;

	f->t = open_tree(f, &o);
	assert_string_equal(order(f->t), "net.w net.b step m");
	assert_int_equal(ckpt_tree_count(f->t), 4);
	assert_int_equal(ckpt_tree_hidden_count(f->t), 2);
	assert_int_equal(look(f->t, "moments.net.w"), 0);
	assert_int_not_equal(look(f->t, "net.w"), 0);
	/* ids are given in file order: the third parameter's is 12; it
	 * names nothing */
	assert_int_equal(look(f->t, "net.b"), 2 * CKPT_TREE_ID_STEP);
	assert_int_equal(ckpt_tree_stat(f->t, 3 * CKPT_TREE_ID_STEP, &info,
					&err),
			 CKPT_ERR_NOTFOUND);
	assert_int_equal(ckpt_tree_read(f->t, 3 * CKPT_TREE_ID_STEP, buf,
					sizeof(buf), 0, &done, &err),
			 CKPT_ERR_NOTFOUND);
	assert_int_equal(ckpt_tree_write(f->t, 4 * CKPT_TREE_ID_STEP, buf, 4, 0,
					 &err),
			 CKPT_ERR_NOTFOUND);
	assert_false(ckpt_tree_dirty(f->t));
}

static void test_include_only(void **state)
{
	struct fx *f = *state;
	const char *const inc[] = {"net.*", "m", NULL};
	const char *const exc[] = {"*.b", NULL};
	struct ckpt_tree_opts o = {.include = inc, .exclude = exc};

	f->t = open_tree(f, &o);
	assert_string_equal(order(f->t), "net.w m");
	assert_int_equal(ckpt_tree_count(f->t), 2);
	assert_int_equal(look(f->t, "step"), 0);
}

static void test_no_selection_hides_nothing(void **state)
{
	struct fx *f = *state;
	const char *const empty[] = {NULL};
	struct ckpt_tree_opts o = {.include = empty, .exclude = empty};

	f->t = open_tree(f, &o);
	assert_string_equal(order(f->t),
			    "net.w net.b moments.net.w moments.net.b step m");
	assert_int_equal(ckpt_tree_hidden_count(f->t), 0);
}

static void test_hidden_name_taken(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.exclude = exclude_moments};
	struct ckpt_error err = {0};
	uint64_t id = 0;

	f->t = open_tree(f, &o);
	assert_int_equal(ckpt_tree_create(f->t, "moments.net.w", &id, &err),
			 CKPT_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "hidden parameter"));
	assert_non_null(strstr(err.msg, "moments.net.w"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(ckpt_tree_rename(f->t, "net.w", "moments.net.b", false,
					  &err),
			 CKPT_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "hidden parameter"));
	assert_int_equal(ckpt_tree_rename(f->t, "moments.net.w", "x", false,
					  &err),
			 CKPT_ERR_NOTFOUND);
	assert_int_equal(ckpt_tree_unlink(f->t, "moments.net.w", &err),
			 CKPT_ERR_NOTFOUND);
	assert_string_equal(order(f->t), "net.w net.b step m");
	assert_false(ckpt_tree_dirty(f->t));
	/* a new name that the globs would hide is a new file: shown */
	ok(ckpt_tree_create(f->t, "moments.new", &id, &err), &err);
	assert_string_equal(order(f->t), "net.w net.b step m moments.new");
	ckpt_tree_forget(f->t, id, 1);
}

static void test_hidden_kept_by_commits(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.exclude = exclude_moments};
	struct ckpt_error err = {0};
	const char *const got[] = {"net.w", "net.b", "moments.net.w",
				   "moments.net.b", NULL};
	uint8_t w[16];
	uint64_t id;

	memset(w, 0x77, sizeof(w));
	f->t = open_tree(f, &o);
	ok(ckpt_tree_write(f->t, look(f->t, "net.w"), w, sizeof(w), 0, &err),
	   &err);
	ok(ckpt_tree_unlink(f->t, "step", &err), &err);
	commit(f->t);
	assert_string_equal(file_names(f->path),
			    "net.w net.b moments.net.w moments.net.b m");
	check_file_bytes(f->path, got, 1u << 0);
	/* the tree goes on, on the new file: still hidden */
	assert_string_equal(order(f->t), "net.w net.b m");
	assert_int_equal(ckpt_tree_count(f->t), 3);
	assert_int_equal(look(f->t, "moments.net.b"), 0);
	ok(ckpt_tree_rename(f->t, "net.b", "bias", false, &err), &err);
	ok(ckpt_tree_create(f->t, "new", &id, &err), &err);
	ok(ckpt_tree_write(f->t, id, w, 4, 0, &err), &err);
	ckpt_tree_forget(f->t, id, 1);
	commit(f->t);
	assert_string_equal(file_names(f->path),
			    "net.w bias moments.net.w moments.net.b m new");
	check_file_bytes(f->path,
			 (const char *const[]){"net.w", "bias", "moments.net.w",
					       "moments.net.b", NULL},
			 1u << 0);
}

/* ---- dropping them ------------------------------------------------------- */

static void test_drop_hidden(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {
		.exclude = exclude_moments, .output = f->out, .one_shot = true};
	struct ckpt_error err = {0};
	const char *const got[] = {"net.w", "net.b", NULL, NULL, "step"};

	f->t = open_tree(f, &o);
	ok(ckpt_tree_drop_hidden(f->t, &err), &err);
	assert_int_equal(ckpt_tree_hidden_count(f->t), 0);
	assert_int_equal(ckpt_tree_count(f->t), 4);
	assert_true(ckpt_tree_dirty(f->t));
	assert_string_equal(order(f->t), "net.w net.b step m");
	/* a dropped name is free again */
	assert_int_equal(look(f->t, "moments.net.w"), 0);
	commit(f->t);
	assert_string_equal(file_names(f->out), "net.w net.b step m");
	check_file_bytes(f->out, got, 0);
	assert_string_equal(file_names(f->path),
			    "net.w net.b moments.net.w moments.net.b step m");
}

static void test_drop_hidden_read_only(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.exclude = exclude_moments,
				   .read_only = true};
	struct ckpt_error err = {0};

	f->t = open_tree(f, &o);
	assert_int_equal(ckpt_tree_drop_hidden(f->t, &err), CKPT_ERR_READONLY);
	assert_int_equal(ckpt_tree_hidden_count(f->t), 2);
}

/* ---- renaming everything -------------------------------------------------- */

/* A rename rule for the tests: pairs old -> new; fail_on fails there. */
struct rules {
	const char *const *pairs; /* old, new, old, new, ..., NULL */
	const char *fail_on;
	char seen[512]; /* the names asked about, joined by ' ' */
};

static ckpt_err by_rules(void *ctx, const char *name, size_t len, char **out,
			 struct ckpt_error *err)
{
	struct rules *r = ctx;

	assert_int_equal(strlen(name), len);
	if (r->seen[0])
		strcat(r->seen, " ");
	strcat(r->seen, name);
	*out = NULL;
	if (r->fail_on && !strcmp(name, r->fail_on)) {
		err->code = CKPT_ERR_INVAL;
		snprintf(err->msg, sizeof(err->msg), "rule fails on %s", name);
		return CKPT_ERR_INVAL;
	}
	for (const char *const *p = r->pairs; *p; p += 2)
		if (!strcmp(*p, name)) {
			*out = strdup(p[1]);
			return *out ? CKPT_OK : CKPT_ERR_NOMEM;
		}
	return CKPT_OK;
}

static void open_one_shot(struct fx *f, const char *const *exclude)
{
	struct ckpt_tree_opts o = {
		.exclude = exclude, .output = f->out, .one_shot = true};

	f->t = open_tree(f, &o);
}

static void test_rename_all(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "model.w", "net.b", "model.b",
				     "step",  "step",	 NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_error err = {0};
	const char *const got[] = {"model.w", "model.b", NULL, NULL, "step"};

	open_one_shot(f, exclude_moments);
	ok(ckpt_tree_drop_hidden(f->t, &err), &err);
	ok(ckpt_tree_rename_all(f->t, by_rules, &r, &err), &err);
	assert_string_equal(r.seen, "net.w net.b step m");
	assert_string_equal(order(f->t), "model.w model.b step m");
	assert_int_equal(look(f->t, "net.w"), 0);
	assert_int_not_equal(look(f->t, "model.w"), 0);
	commit(f->t);
	assert_string_equal(file_names(f->out), "model.w model.b step m");
	check_file_bytes(f->out, got, 0);
}

static void test_rename_swap(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "net.b", "net.b", "net.w", NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_error err = {0};
	const char *const got[] = {"net.b", "net.w", "moments.net.w",
				   "moments.net.b", "step"};

	open_one_shot(f, NULL);
	ok(ckpt_tree_rename_all(f->t, by_rules, &r, &err), &err);
	assert_string_equal(order(f->t),
			    "net.b net.w moments.net.w moments.net.b step m");
	commit(f->t);
	check_file_bytes(f->out, got, 0);
}

/* The tree as opened: nothing renamed, nothing dirty. */
static void check_unrenamed(struct fx *f, const char *want)
{
	assert_string_equal(order(f->t), want);
	assert_false(ckpt_tree_dirty(f->t));
	assert_int_not_equal(look(f->t, "net.w"), 0);
}

static void test_rename_collision(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "x", "net.b", "x", NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_error err = {0};

	open_one_shot(f, NULL);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "'net.w'"));
	assert_non_null(strstr(err.msg, "'net.b'"));
	assert_non_null(strstr(err.msg, "'x'"));
	check_unrenamed(f, "net.w net.b moments.net.w moments.net.b step m");
}

static void test_rename_collision_unchanged(void **state)
{
	struct fx *f = *state;
	/* the later entry renamed onto the earlier, unchanged one */
	const char *const pairs[] = {"moments.net.b", "net.w", NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_error err = {0};

	open_one_shot(f, NULL);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "'net.w' and 'moments.net.b'"));
	assert_non_null(strstr(err.msg, "name 'net.w'"));
	check_unrenamed(f, "net.w net.b moments.net.w moments.net.b step m");
}

static void test_rename_collision_hidden(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "moments.net.w", NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_error err = {0};

	open_one_shot(f, exclude_moments);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "'moments.net.w' (hidden)"));
	assert_non_null(strstr(err.msg, "'net.w'"));
	assert_string_equal(r.seen, "net.w net.b step m");
	check_unrenamed(f, "net.w net.b step m");
}

static void test_rename_failure_no_partial(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "a", "net.b", "b",
				     "step",  "s", NULL};
	struct rules r = {.pairs = pairs, .fail_on = "step"};
	struct ckpt_error err = {0};

	open_one_shot(f, NULL);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_INVAL);
	assert_string_equal(err.msg, "rule fails on step");
	check_unrenamed(f, "net.w net.b moments.net.w moments.net.b step m");
}

static void test_rename_bad_names(void **state)
{
	struct fx *f = *state;
	const char *const map[] = {"m", "mm", NULL};
	const char *const empty[] = {"net.b", "", NULL};
	const char *const utf8[] = {"net.b", "caf\xe9", NULL};
	const char *const same[] = {"net.w", "net.w", NULL};
	struct rules r = {.pairs = map};
	struct ckpt_error err = {0};
	const char *const want =
		"net.w net.b moments.net.w moments.net.b step m";

	open_one_shot(f, NULL);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "map parameter"));
	r = (struct rules){.pairs = empty};
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_INVAL);
	r = (struct rules){.pairs = utf8};
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_INVAL);
	assert_non_null(strstr(err.msg, "UTF-8"));
	check_unrenamed(f, want);
	/* names given back unchanged change nothing */
	r = (struct rules){.pairs = same};
	ok(ckpt_tree_rename_all(f->t, by_rules, &r, &err), &err);
	check_unrenamed(f, want);
}

static void test_rename_read_only(void **state)
{
	struct fx *f = *state;
	const char *const pairs[] = {"net.w", "x", NULL};
	struct rules r = {.pairs = pairs};
	struct ckpt_tree_opts o = {.read_only = true};
	struct ckpt_error err = {0};

	f->t = open_tree(f, &o);
	assert_int_equal(ckpt_tree_rename_all(f->t, by_rules, &r, &err),
			 CKPT_ERR_READONLY);
	assert_string_equal(r.seen, "");
}

/* ---- renaming a prefix (ckpt_tree_rename_prefix) ----------------------- */

static void test_rename_prefix(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	const char *const got[] = {"model.w", "model.b", "moments.net.w",
				   "moments.net.b", "step"};
	uint64_t w;

	f->t = open_tree(f, NULL);
	w = look(f->t, "net.w");
	ok(ckpt_tree_rename_prefix(f->t, "net", "model", &err), &err);
	/* whole components from the start: moments.net.* stays */
	assert_string_equal(order(f->t), "model.w model.b moments.net.w "
					 "moments.net.b step m");
	assert_int_equal(look(f->t, "model.w"), w); /* the id stays */
	assert_true(ckpt_tree_dirty(f->t));
	commit(f->t);
	assert_string_equal(file_names(f->path), "model.w model.b "
						 "moments.net.w moments.net.b "
						 "step m");
	check_file_bytes(f->path, got, 0);
}

static void test_rename_prefix_deeper(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};

	f->t = open_tree(f, NULL);
	ok(ckpt_tree_rename_prefix(f->t, "moments.net", "adam.m", &err), &err);
	assert_string_equal(order(f->t),
			    "net.w net.b adam.m.w adam.m.b step m");
	ok(ckpt_tree_rename_prefix(f->t, "adam", "net.adam", &err), &err);
	assert_string_equal(order(f->t),
			    "net.w net.b net.adam.m.w net.adam.m.b step m");
}

/* Only whole components move: net..z and netx.a are not under net; the
 * parameter named like the prefix moves with it. */
static void test_rename_prefix_components(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t id;

	f->t = open_tree(f, NULL);
	ok(ckpt_tree_create(f->t, "net..z", &id, &err), &err);
	ok(ckpt_tree_create(f->t, "netx.a", &id, &err), &err);
	ok(ckpt_tree_create(f->t, "net", &id, &err), &err);
	ok(ckpt_tree_rename_prefix(f->t, "net", "q", &err), &err);
	assert_non_null(strstr(order(f->t), "q.w q.b "));
	assert_non_null(strstr(order(f->t), "net..z netx.a q"));
	assert_int_equal(look(f->t, "net"), 0);
	assert_int_equal(look(f->t, "q"), id);
}

static void test_rename_prefix_not_empty(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	const char *orig = "net.w net.b moments.net.w moments.net.b step m";

	f->t = open_tree(f, NULL);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "moments", &err),
			 CKPT_ERR_NOTEMPTY);
	assert_non_null(strstr(err.msg, "'moments.net.w'"));
	/* a parameter named like the target makes it taken, too */
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "step", &err),
			 CKPT_ERR_NOTEMPTY);
	check_unrenamed(f, orig);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "net.x", &err),
			 CKPT_ERR_INVAL);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "net", &err),
			 CKPT_ERR_INVAL);
	check_unrenamed(f, orig);
}

/* A map parameter under the prefix refuses the whole move. */
static void test_rename_prefix_map(void **state)
{
	struct fx *f = *state;
	struct ckpt_error err = {0};
	uint64_t id;

	f->t = open_tree(f, NULL);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "m", "n", &err),
			 CKPT_ERR_UNSUPPORTED);
	ok(ckpt_tree_create(f->t, "m.x", &id, &err), &err);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "m", "n", &err),
			 CKPT_ERR_UNSUPPORTED);
	assert_non_null(strstr(order(f->t), "m m.x"));
}

static void test_rename_prefix_hidden(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.exclude = exclude_moments};
	struct ckpt_error err = {0};

	f->t = open_tree(f, &o);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "moments", &err),
			 CKPT_ERR_NOTEMPTY);
	assert_non_null(strstr(err.msg, "(hidden)"));
	/* only hidden ones under it: nothing moves */
	ok(ckpt_tree_rename_prefix(f->t, "moments", "x", &err), &err);
	assert_string_equal(order(f->t), "net.w net.b step m");
	assert_false(ckpt_tree_dirty(f->t));
}

static void test_rename_prefix_read_only(void **state)
{
	struct fx *f = *state;
	struct ckpt_tree_opts o = {.read_only = true};
	struct ckpt_error err = {0};

	f->t = open_tree(f, &o);
	assert_int_equal(ckpt_tree_rename_prefix(f->t, "net", "x", &err),
			 CKPT_ERR_READONLY);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_keep_rule),
		T(test_hidden_not_shown),
		T(test_include_only),
		T(test_no_selection_hides_nothing),
		T(test_hidden_name_taken),
		T(test_hidden_kept_by_commits),
		T(test_drop_hidden),
		T(test_drop_hidden_read_only),
		T(test_rename_all),
		T(test_rename_swap),
		T(test_rename_collision),
		T(test_rename_collision_unchanged),
		T(test_rename_collision_hidden),
		T(test_rename_failure_no_partial),
		T(test_rename_bad_names),
		T(test_rename_read_only),
		T(test_rename_prefix),
		T(test_rename_prefix_deeper),
		T(test_rename_prefix_components),
		T(test_rename_prefix_not_empty),
		T(test_rename_prefix_map),
		T(test_rename_prefix_hidden),
		T(test_rename_prefix_read_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
