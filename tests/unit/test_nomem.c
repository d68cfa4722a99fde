/*
 * test_nomem.c - allocation failures injected into libckpt.
 *
 * The test is linked with
 *     -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup
 * so that every malloc/calloc/realloc/strdup made by code linked statically
 * into this executable (libckpt, the test helpers) goes through the
 * __wrap_* functions below.  Shared libraries (libc internals such as
 * realpath and asprintf, OpenSSL, protobuf-c, cmocka) are not affected:
 * only our own allocations are counted and failed, and only while a
 * library call is "armed".
 *
 * For every operation under test the allocations it makes are numbered
 * 1, 2, 3, ...; for N = 1, 2, 3, ... the operation runs again with the Nth
 * allocation failing, until a run finishes without reaching N.  Every run
 * must either succeed with the right result or fail with an error code and
 * a message, and leave nothing behind: no leak (LeakSanitizer in the ASan
 * build, heap bytes in use and open descriptors in the plain build), no
 * change to the tree (a snapshot of every entry's name, dtype, shape and
 * bytes is compared with a fault-free reference run), no change to the
 * target of a failed commit, no stray file; and repeating the failed step
 * without faults must succeed.
 *
 * Covered: ckpt_open of every real fixture and of generated edge files
 * (maps in slices, sliced tensors, 10,000 parameters, CRC trailer,
 * duplicates, bfloat16-as-float32, long and escaped names, an empty file),
 * ckpt_tree_open + create/write/truncate/set_dtype/set_shape/rename/unlink/
 * read + commit (twice, so that the rebind after a commit is exercised) +
 * save_recovery, on a plain, a CRC-protected and an AES-GCM-encrypted
 * checkpoint, with -o create and with -o output; ckpt_key_read/ckpt_key_load,
 * ckpt_open with a key, and encrypting a checkpoint through a tree.
 *
 * Environment: CKPT_FIXTURES (real fixtures), CKPT_NOMEM_FULL=1 tries every
 * fault point also of the 10,000-parameter file (default: the first 1,000,
 * the last 50 and 64 in between), CKPT_SANITIZED=1 (the ASan pass: of the
 * operations tried point by point, the first 64 points and then every 3rd),
 * CKPT_NOMEM_TMP (scratch directory,
 * default /dev/shm, else /tmp).
 *
 * Without the --wrap link options the test skips itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"
#include "ckpt.h"
#include "ckpt_tree.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

/* ---- the wrappers -------------------------------------------------------- */

/* weak: without --wrap they stay unresolved (NULL) and are never called */
extern void *__real_malloc(size_t n) __attribute__((weak));
extern void *__real_calloc(size_t n, size_t size) __attribute__((weak));
extern void *__real_realloc(void *p, size_t n) __attribute__((weak));
extern char *__real_strdup(const char *s) __attribute__((weak));
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static struct {
	bool armed;	       /* count (and maybe fail) allocations */
	bool persist;	       /* fail every allocation from fail_at on */
	unsigned long count;   /* allocations seen while armed */
	unsigned long fail_at; /* 1-based; 0: never fail */
	bool hit;	       /* an allocation was failed */
} fi;

static bool fault_now(void)
{
	if (!fi.armed)
		return false;
	fi.count++;
	if (fi.fail_at &&
	    (fi.count == fi.fail_at || (fi.persist && fi.count > fi.fail_at))) {
		fi.hit = true;
		errno = ENOMEM;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	return fault_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fault_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fault_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fault_now() ? NULL : __real_strdup(s);
}

static void arm(unsigned long fail_at, bool persist)
{
	fi.count = 0;
	fi.hit = false;
	fi.fail_at = fail_at;
	fi.persist = persist;
	fi.armed = true;
}

static void disarm(void)
{
	fi.armed = false;
}

/* True if allocations of libckpt really go through the wrappers. */
static bool wrapped(void)
{
	char *s;
	bool ok;

	if (!__real_malloc || !__real_calloc || !__real_realloc ||
	    !__real_strdup)
		return false;
	arm(1, false);
	s = ckpt_name_escape("x", 1);
	disarm();
	ok = s == NULL && fi.hit;
	free(s);
	return ok;
}

static void need_wrap(void)
{
	if (!wrapped()) {
		print_message("test_nomem: not linked with -Wl,--wrap=malloc,"
			      "--wrap=calloc,--wrap=realloc,--wrap=strdup: "
			      "skipped\n");
		skip();
	}
}

/* ---- problems are collected, so that one run reports all of them ------- */

static int problems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	va_list ap;

	if (problems++ < 40) {
		va_start(ap, fmt);
		fputs("PROBLEM: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	} else if (problems == 41) {
		fputs("PROBLEM: (more problems not shown)\n", stderr);
	}
}

/* Distinct (operation, error code) pairs that were not CKPT_ERR_NOMEM,
 * reported once each: allowed, but worth knowing. */
static char notes[64][160];
static int nnotes;

static void note_code(const char *what, ckpt_err code, const char *msg)
{
	char key[160];

	snprintf(key, sizeof(key), "%s -> %s", what, ckpt_strerror(code));
	for (int i = 0; i < nnotes; i++)
		if (strcmp(notes[i], key) == 0)
			return;
	if (nnotes < 64) {
		snprintf(notes[nnotes++], sizeof(notes[0]), "%s", key);
		print_message("note: an allocation failure in %s gives '%s' "
			      "(not 'out of memory'): %s\n",
			      what, ckpt_strerror(code), msg);
	}
}

/* Checks the error of a call that failed while a fault was injected. */
static void check_failure(const char *what, ckpt_err rc,
			  const struct ckpt_error *err, bool nomem_only)
{
	if (err->code != rc)
		problem("%s: returned %s but err.code is %s", what,
			ckpt_strerror(rc), ckpt_strerror(err->code));
	if (!err->msg[0])
		problem("%s: failed (%s) without a message", what,
			ckpt_strerror(rc));
	else if (strstr(err->msg, "(null)"))
		problem("%s: the message names no file (a NULL string was "
			"printed): \"%s\"",
			what, err->msg);
	if (rc != CKPT_ERR_NOMEM) {
		if (nomem_only)
			problem("%s: an allocation failure gave '%s', not "
				"'out of memory': %s",
				what, ckpt_strerror(rc), err->msg);
		else
			note_code(what, rc, err->msg);
	}
}

/* ---- leak accounting (plain build; ASan has LeakSanitizer) -------------- */

static size_t heap_in_use(void)
{
#ifdef HAVE_ASAN
	return 0;
#else
	return mallinfo2().uordblks;
#endif
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own descriptor */
}

struct usage {
	size_t heap;
	int fds;
};

static struct usage usage_now(void)
{
	return (struct usage){heap_in_use(), count_fds()};
}

static void check_usage(const char *what, unsigned long n, struct usage u0)
{
	struct usage u = usage_now();

	if (u.fds != u0.fds)
		problem("%s, fault %lu: %d descriptors open afterwards, %d "
			"before (descriptor leak)",
			what, n, u.fds, u0.fds);
	if (u.heap != u0.heap)
		problem("%s, fault %lu: %zd heap bytes more in use afterwards "
			"(leak)",
			what, n, (ssize_t)(u.heap - u0.heap));
}

/* ---- small string builder ------------------------------------------------ */

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sb *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(s->p ? s->p + s->len : NULL,
			      s->p ? s->cap - s->len : 0, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (s->p && s->len + (size_t)n < s->cap)
			break;
		s->cap = (s->len + (size_t)n + 1) * 2 + 256;
		s->p = realloc(s->p, s->cap);
		assert_non_null(s->p);
	}
	s->len += (size_t)n;
}

/* A printable version of a name (any bytes). */
static void sb_name(struct sb *s, const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e || c == '\\')
			sb_printf(s, "\\x%02x", c);
		else
			sb_printf(s, "%c", c);
	}
}

/* First line where two descriptions differ, for messages. */
static void show_diff(const char *what, const char *want, const char *got)
{
	size_t i = 0, line = 0;

	while (want[i] && want[i] == got[i])
		i++;
	while (i > 0 && want[i - 1] != '\n')
		i--;
	for (size_t k = 0; k < i; k++)
		line += want[k] == '\n';
	problem("%s: differs from the fault-free run at line %zu:\n"
		"  expected: %.*s\n  got:      %.*s",
		what, line + 1, (int)strcspn(want + i, "\n"), want + i,
		(int)strcspn(got + i, "\n"), got + i);
}

/* ---- files and directories ------------------------------------------------ */

static char scratch_root[PATH_MAX];

static const char *scratch(void)
{
	const char *env = getenv("CKPT_NOMEM_TMP");
	struct stat st;

	if (!scratch_root[0]) {
		const char *base = env && *env ? env
				   : stat("/dev/shm", &st) == 0 &&
						   S_ISDIR(st.st_mode)
					   ? "/dev/shm"
					   : "/tmp";
		snprintf(scratch_root, sizeof(scratch_root),
			 "%s/ckpt-nomem-XXXXXX", base);
		assert_non_null(mkdtemp(scratch_root));
	}
	return scratch_root;
}

static void rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char sub[PATH_MAX];

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

/* Sorted, newline-separated names in dir (malloc'd). */
static char *listing(const char *dir)
{
	struct dirent **list;
	struct sb s = {0};
	int n = scandir(dir, &list, NULL, alphasort);

	sb_printf(&s, "%s", "");
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i]->d_name, ".") &&
		    strcmp(list[i]->d_name, ".."))
			sb_printf(&s, "%s\n", list[i]->d_name);
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	return s.p;
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static bool read_file(const char *path, struct buf *b)
{
	memset(b, 0, sizeof(*b));
	return buf_read_file(b, path);
}

/* ---- describing an open checkpoint --------------------------------------- */

static void describe_tensor(struct sb *s, const struct ckpt_file *f,
			    const struct ckpt_tensor *t, bool data)
{
	char shape[512];

	ckpt_shape_format(t->dims, t->ndims, shape, sizeof(shape));
	sb_printf(s, " %s(%s) %s size=%llu stored=%llu ext=%u z=%d bf=%d",
		  ckpt_dtype_name(t->dtype), t->type_str ? t->type_str : "-",
		  shape, (unsigned long long)t->size,
		  (unsigned long long)t->stored, t->nextents, t->dims_zero_form,
		  t->bf16_from_f32);
	if (data) {
		uint8_t *p = malloc(t->size + 1);
		struct ckpt_error err = {0};
		ssize_t n;

		assert_non_null(p);
		n = tensor_read_n(f, t, p, (size_t)t->size, 0, &err);
		if (n != (ssize_t)t->size)
			sb_printf(s, " READ-FAILED(%s)", err.msg);
		else
			sb_printf(s, " crc=%08x", ckpt_crc32(0, p, t->size));
		free(p);
	}
}

/* Everything ckpt_open found, one line per parameter (malloc'd).  With
 * data, the CRC-32 of every tensor's bytes too. */
static char *describe_file(const struct ckpt_file *f, bool data)
{
	const struct ckpt_stats *st = ckpt_stats(f);
	struct sb s = {0};

	sb_printf(&s,
		  "params=%zu records=%llu unknown=%llu dups=%llu "
		  "bytes=%llu crc=%d/%d/%d enc=%d blocks=%llu\n",
		  ckpt_count(f), (unsigned long long)st->records,
		  (unsigned long long)st->unknown_fields,
		  (unsigned long long)st->duplicates,
		  (unsigned long long)st->data_bytes, st->has_crc,
		  st->crc_checked, st->crc_wide, (int)st->enc_mode,
		  (unsigned long long)st->enc_blocks);
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		sb_name(&s, p->name, p->name_len);
		sb_printf(&s, " [%s] slices=%u", p->fname, p->nslices);
		if (ckpt_find(f, p->fname) != (ssize_t)i)
			sb_printf(&s, " NOT-FOUND-BY-NAME");
		if (p->kind == CKPT_PARAM_TENSOR) {
			describe_tensor(&s, f, &p->tensor, data);
		} else {
			for (int k = 0; k < CKPT_MAP_NTENSORS; k++) {
				sb_printf(&s, " %s:", ckpt_map_names[k]);
				describe_tensor(&s, f, &p->map[k], data);
			}
		}
		sb_printf(&s, "\n");
	}
	return s.p;
}

/* ---- ckpt_open with faults ------------------------------------------------ */

static bool full_run(void)
{
	const char *e = getenv("CKPT_NOMEM_FULL");

	return e && *e && strcmp(e, "0") != 0;
}

/* The next fault point after n, where an operation tries them all: n + 1,
 * but under ASan (CKPT_SANITIZED=1, where each point costs 13 times as
 * much) only the first 64 and then every 3rd (1, 2, ... 64, 67, 70, ...).
 * The plain pass still tries every one; CKPT_NOMEM_FULL wins. */
static unsigned long stride_point(unsigned long n)
{
	const char *e = getenv("CKPT_SANITIZED");
	bool asan = e && *e && strcmp(e, "0") != 0;

	return n + (asan && !full_run() && n >= 64 ? 3 : 1);
}

/* The next fault point after n, for an operation of total allocations:
 * all of them, unless there are many (then the first 1000, the last 50 and
 * 64 evenly spaced in between). */
static unsigned long next_point(unsigned long n, unsigned long total)
{
	unsigned long step;

	if (full_run() || total <= 3000 || n < 1000 || n + 50 >= total)
		return stride_point(n);
	step = (total - 1050) / 64 + 1;
	return n + step < total - 50 ? n + step : total - 50;
}

static unsigned long total_points;

/* Opens path with the Nth allocation failing, for every N; returns the
 * number of fault points tried. */
static unsigned long open_with_faults(const char *label, const char *path,
				      const struct ckpt_open_opts *opts,
				      bool persist)
{
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	unsigned long total, points = 0;
	char *want, what[PATH_MAX + 64];
	ckpt_err rc;

	snprintf(what, sizeof(what), "ckpt_open(%s)%s", label,
		 persist ? " [all allocations from N on fail]" : "");
	rc = ckpt_open(path, opts, &f, &err);
	if (rc)
		print_error("%s: %s\n", path, err.msg);
	assert_int_equal(rc, CKPT_OK);
	want = describe_file(f, true);
	ckpt_close(f);

	arm(0, false);
	rc = ckpt_open(path, opts, &f, &err);
	disarm();
	total = fi.count;
	assert_int_equal(rc, CKPT_OK);
	ckpt_close(f);

	for (unsigned long n = 1;; n = next_point(n, total)) {
		struct usage u0 = usage_now();
		bool hit;

		f = (struct ckpt_file *)&f;
		memset(&err, 0, sizeof(err));
		arm(n, persist);
		rc = ckpt_open(path, opts, &f, &err);
		disarm();
		hit = fi.hit;
		if (rc == CKPT_OK) {
			char *got = describe_file(f, true);
			if (strcmp(got, want) != 0)
				show_diff(what, want, got);
			free(got);
			ckpt_close(f);
		} else {
			if (!hit)
				problem("%s: fails without a fault: %s", what,
					err.msg);
			if (f != NULL)
				problem("%s, fault %lu: failed but *out is not "
					"NULL",
					what, n);
			check_failure(what, rc, &err, true);
		}
		check_usage(what, n, u0);
		if (!hit)
			break;
		points++;
	}
	free(want);
	total_points += points;
	return points;
}

/* ---- generated edge files -------------------------------------------------- */

static void add_f32(struct buf *b, const char *name, const int64_t *dims,
		    unsigned ndims, size_t nel, unsigned seed)
{
	float *v = malloc((nel ? nel : 1) * sizeof(float));

	assert_non_null(v);
	for (size_t i = 0; i < nel; i++)
		v[i] = (float)((double)i * 0.5 + seed);
	buf_record(b, name, dims, ndims, "Float32", v, nel * sizeof(float));
	free(v);
}

static void map_tensors(struct buf *keys, struct buf *values,
			struct buf *status, int64_t rows, unsigned seed)
{
	int64_t kd[1] = {rows}, vd[2] = {rows, 3}, sd[1] = {rows};
	int64_t k[8];
	float v[24];
	int32_t st[8];

	for (int64_t i = 0; i < rows; i++) {
		k[i] = (int64_t)(seed * 100 + (unsigned)i);
		st[i] = (int32_t)i;
		for (int j = 0; j < 3; j++)
			v[i * 3 + j] =
				(float)(seed + (unsigned)i + (unsigned)j);
	}
	memset(keys, 0, sizeof(*keys));
	memset(values, 0, sizeof(*values));
	memset(status, 0, sizeof(*status));
	buf_tensor(keys, kd, 1, "int64", k, (size_t)rows * 8);
	buf_tensor(values, vd, 2, "float32", v, (size_t)rows * 12);
	buf_tensor(status, sd, 1, "int32", st, (size_t)rows * 4);
}

static void add_map(struct buf *b, const char *name, int64_t rows,
		    unsigned seed)
{
	struct buf k, v, s;

	map_tensors(&k, &v, &s, rows, seed);
	buf_map_record(b, name, &k, &v, &s);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);
}

static void gen_maps(struct buf *b)
{
	int64_t d2[2] = {2, 3};

	add_f32(b, "before", d2, 2, 6, 1);
	add_map(b, "embedding", 2, 1); /* a map in three slices */
	add_map(b, "embedding", 3, 2);
	add_map(b, "embedding", 1, 3);
	add_map(b, "single", 4, 4);
	add_f32(b, "after", d2, 2, 6, 2);
}

static void gen_slices(struct buf *b)
{
	int64_t d[1] = {64}, d1[1] = {6};
	uint8_t bytes[64];

	for (int i = 0; i < 64; i++)
		bytes[i] = (uint8_t)(i * 7);
	add_f32(b, "head", d1, 1, 6, 3);
	/* "big": UInt8 [64] in 5 consecutive records */
	buf_record(b, "big", d, 1, "UInt8", bytes, 10);
	buf_record(b, "big", d, 1, "UInt8", bytes + 10, 20);
	buf_record(b, "big", d, 1, "UInt8", bytes + 30, 1);
	buf_record(b, "big", d, 1, "UInt8", bytes + 31, 0);
	buf_record(b, "big", d, 1, "UInt8", bytes + 31, 33);
	add_f32(b, "tail", d1, 1, 6, 4);
}

static void gen_many(struct buf *b)
{
	int64_t d[1] = {2};
	char name[32];

	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "layer.%05d.weight", i);
		add_f32(b, name, d, 1, 2, (unsigned)i);
	}
}

static void gen_crc(struct buf *b)
{
	int64_t d[2] = {3, 4};

	add_f32(b, "a", d, 2, 12, 5);
	add_f32(b, "b", d, 1, 3, 6);
	buf_crc_trailer(b);
}

static void gen_dups(struct buf *b)
{
	int64_t d[1] = {3}, d2[1] = {5};

	add_f32(b, "x", d, 1, 3, 1);
	add_f32(b, "y", d, 1, 3, 2);
	add_f32(b, "x", d2, 1, 5, 3); /* replaces the first x in place */
	add_f32(b, "z", d, 1, 3, 4);
	add_f32(b, "y", d, 1, 3, 5);
}

static void gen_misc(struct buf *b)
{
	int64_t d[1] = {4}, d8[8] = {1, 2, 1, 2, 1, 2, 1, 1}, d0[1] = {0};
	int64_t d1[1] = {1};
	float f32[4] = {1, 2, 3, 4}, one = 1;
	int32_t i32 = 7;
	uint32_t str[3] = {'a', 'b', 'c'};
	char longname[1001];
	struct buf t = {0};

	memset(longname, 'n', 1000);
	longname[1000] = '\0';
	buf_record(b, "bf", d, 1, "BFloat16", f32, sizeof(f32)); /* f32 form */
	add_f32(b, "dims8", d8, 8, 8, 1);
	buf_record(b, "scalar0", d0, 1, "Int32", &i32, 4);
	buf_record(b, "scalar", NULL, 0, "Int32", &i32, 4);
	buf_record(b, "text", d0, 1, "str", str, sizeof(str));
	add_f32(b, longname, d, 1, 4, 2);
	add_f32(b, "a/b%c", d, 1, 4, 3);
	add_f32(b, "..", d, 1, 4, 4);
	buf_tensor(&t, d1, 1, "Float32", &one, 4); /* the empty name */
	buf_value_record(b, "", 0, 2, &t);
	buf_value_record(b, "nul\0byte", 8, 2, &t); /* a NUL in the name */
	buf_free(&t);
}

struct gen {
	const char *name;
	void (*fn)(struct buf *b);
};

static const struct gen gens[] = {
	{"gen_maps", gen_maps}, {"gen_slices", gen_slices},
	{"gen_crc", gen_crc},	{"gen_dups", gen_dups},
	{"gen_misc", gen_misc}, {"gen_many_10000", gen_many},
};

static char *gen_file(const struct gen *g)
{
	struct buf b = {0};
	char *path = malloc(PATH_MAX);

	assert_non_null(path);
	g->fn(&b);
	snprintf(path, PATH_MAX, "%s/%s.ckpt", scratch(), g->name);
	write_file(path, b.p, b.len);
	buf_free(&b);
	return path;
}

/* ---- tests: opening ------------------------------------------------------ */

static void test_open_real_fixtures(void **state)
{
	const char *dir = fixtures_dir();
	struct dirent **list;
	unsigned long points = 0;
	int n, files = 0;

	(void)state;
	need_wrap();
	problems = 0;
	n = scandir(dir, &list, NULL, alphasort);
	if (n < 0) {
		print_error("cannot read the fixtures directory %s\n", dir);
		fail();
	}
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		size_t len = strlen(name);
		char path[PATH_MAX];

		if (len > 5 && strcmp(name + len - 5, ".ckpt") == 0 &&
		    strncmp(name, "NEG_", 4) != 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, name);
			points += open_with_faults(name, path, NULL, false);
			points += open_with_faults(name, path, NULL, true);
			files++;
		}
		free(list[i]);
	}
	free(list);
	print_message("real fixtures: %d files, %lu fault points\n", files,
		      points);
	assert_true(files > 0);
	assert_int_equal(problems, 0);
}

static void test_open_generated(void **state)
{
	unsigned long points = 0;
	struct ckpt_open_opts skip = {.skip_crc = true};

	(void)state;
	need_wrap();
	problems = 0;
	for (size_t i = 0; i < sizeof(gens) / sizeof(gens[0]); i++) {
		char *path = gen_file(&gens[i]);
		unsigned long p =
			open_with_faults(gens[i].name, path, NULL, false);
		if (strcmp(gens[i].name, "gen_many_10000") != 0)
			p += open_with_faults(gens[i].name, path, NULL, true);
		if (strcmp(gens[i].name, "gen_crc") == 0)
			p += open_with_faults("gen_crc (skip_crc)", path, &skip,
					      false);
		print_message("%s: %lu fault points\n", gens[i].name, p);
		points += p;
		unlink(path);
		free(path);
	}
	/* an empty file is an empty checkpoint */
	{
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/empty.ckpt", scratch());
		write_file(path, "", 0);
		points += open_with_faults("empty", path, NULL, false);
		unlink(path);
	}
	print_message("generated files: %lu fault points\n", points);
	assert_int_equal(problems, 0);
}

/* ---- the tree ----------------------------------------------------------- */

enum op {
	OP_CREATE,
	OP_WRITE,
	OP_TRUNC,
	OP_DTYPE,
	OP_SHAPE,
	OP_CLEAR_SHAPE,
	OP_RENAME,
	OP_RENAME_NOREPLACE,
	OP_UNLINK,
	OP_COMMIT,
	OP_READ_ALL,
	OP_RECOVERY,
};

static const char *const op_names[] = {
	"ckpt_tree_create",    "ckpt_tree_write",
	"ckpt_tree_truncate",  "ckpt_tree_set_dtype",
	"ckpt_tree_set_shape", "ckpt_tree_clear_shape",
	"ckpt_tree_rename",    "ckpt_tree_rename(noreplace)",
	"ckpt_tree_unlink",    "ckpt_tree_commit",
	"ckpt_tree_read",      "ckpt_tree_save_recovery",
};

struct step {
	enum op op;
	const char *a; /* shown file name */
	const char *b; /* new name, dtype or shape */
	uint64_t off;  /* write offset, truncate size */
	size_t len;    /* write length */
};

struct scenario {
	const char *name;
	void (*gen)(struct buf *b); /* source; NULL: none (-o create) */
	bool encrypt;		    /* source and commits AES-GCM */
	bool output;		    /* commit to out.ckpt (-o output) */
	const struct step *steps;
	size_t nsteps;
};

/* The source of the tree scenarios: every kind of entry. */
static void gen_tree_source(struct buf *b)
{
	int64_t d23[2] = {2, 3}, d4[1] = {4}, d2[1] = {2}, d3[1] = {3};
	int64_t d8[1] = {8}, i64[2] = {-1, 1};
	float f32[4] = {1.5f, 2.5f, 3.5f, 4.5f};
	int32_t i32 = 42;
	uint8_t u8[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	add_f32(b, "w1", d23, 2, 6, 1);
	add_f32(b, "w2", d4, 1, 4, 2);
	buf_record(b, "sliced", d8, 1, "UInt8", u8, 3); /* two slices */
	buf_record(b, "sliced", d8, 1, "UInt8", u8 + 3, 5);
	buf_record(b, "bf", d4, 1, "BFloat16", f32, sizeof(f32)); /* f32 form */
	add_map(b, "m", 2, 7);
	buf_record(b, "scalar", NULL, 0, "Int32", &i32, 4);
	add_f32(b, "a%b/c", d3, 1, 3, 3);
	buf_record(b, "victim", d2, 1, "Int64", i64, sizeof(i64));
	buf_record(b, "gone", d3, 1, "UInt8", u8, 3);
}

static void gen_tree_source_crc(struct buf *b)
{
	gen_tree_source(b);
	buf_crc_trailer(b);
}

static const struct step edit_steps[] = {
	{OP_CREATE, "new%2Fparam", NULL, 0, 0},
	{OP_WRITE, "new%2Fparam", NULL, 0, 24},
	{OP_DTYPE, "new%2Fparam", "float32", 0, 0}, /* inferred shape [6] */
	{OP_WRITE, "w1", NULL, 8, 4},		    /* staged with a copy */
	{OP_SHAPE, "w1", "[6]", 0, 0},
	{OP_RENAME, "w2", "victim", 0, 0}, /* replaces victim */
	{OP_RENAME_NOREPLACE, "sliced", "sliced2", 0, 0},
	{OP_TRUNC, "victim", NULL, 8, 0},
	{OP_SHAPE, "victim", "2", 0, 0},
	{OP_UNLINK, "gone", NULL, 0, 0},
	{OP_WRITE, "bf", NULL, 2, 2}, /* bf16 converted copy */
	{OP_CREATE, "%", NULL, 0, 0}, /* the empty name */
	{OP_WRITE, "%", NULL, 0, 3},
	{OP_READ_ALL, NULL, NULL, 0, 0},
	{OP_COMMIT, NULL, NULL, 0, 0},
	{OP_RENAME, "scalar", "scalar%25x", 0, 0},
	{OP_WRITE, "new%2Fparam", NULL, 4, 8}, /* from the new file */
	{OP_CLEAR_SHAPE, "w1", NULL, 0, 0},
	{OP_DTYPE, "sliced2", "int16", 0, 0},
	{OP_SHAPE, "sliced2", "[2,2]", 0, 0},
	{OP_READ_ALL, NULL, NULL, 0, 0},
	{OP_COMMIT, NULL, NULL, 0, 0},
	{OP_WRITE, "a%25b%2Fc", NULL, 0, 12},
	{OP_UNLINK, "w1", NULL, 0, 0},
	{OP_RECOVERY, NULL, NULL, 0, 0},
	{OP_COMMIT, NULL, NULL, 0, 0},
	{OP_READ_ALL, NULL, NULL, 0, 0},
};

static const struct step create_steps[] = {
	{OP_COMMIT, NULL, NULL, 0, 0}, /* the empty checkpoint */
	{OP_CREATE, "x", NULL, 0, 0},	  {OP_WRITE, "x", NULL, 0, 12},
	{OP_DTYPE, "x", "Float32", 0, 0}, {OP_SHAPE, "x", "[3,1]", 0, 0},
	{OP_CREATE, "y%2Fz", NULL, 0, 0}, {OP_WRITE, "y%2Fz", NULL, 0, 5},
	{OP_COMMIT, NULL, NULL, 0, 0},	  {OP_RENAME, "x", "y%2Fz", 0, 0},
	{OP_COMMIT, NULL, NULL, 0, 0},	  {OP_READ_ALL, NULL, NULL, 0, 0},
};

#define NSTEPS(a) (sizeof(a) / sizeof((a)[0]))

static const struct scenario scenarios[] = {
	{"plain", gen_tree_source, false, false, edit_steps,
	 NSTEPS(edit_steps)},
	{"crc", gen_tree_source_crc, false, false, edit_steps,
	 NSTEPS(edit_steps)},
	/* up to the second commit: every encrypted commit allocates, fills
	 * and wipes two 64 MiB block buffers, which makes each run slow */
	{"aes-gcm", gen_tree_source, true, false, edit_steps, 22},
	{"output", gen_tree_source, false, true, edit_steps,
	 NSTEPS(edit_steps)},
	{"create", NULL, false, false, create_steps, NSTEPS(create_steps)},
};

/* One run of a scenario, and what a fault-free run recorded. */
struct runner {
	const struct scenario *sc;
	char dir[PATH_MAX / 2], tmpdir[PATH_MAX], src[PATH_MAX], out[PATH_MAX];
	struct buf source; /* bytes of the source (maybe encrypted) */
	struct ckpt_key *key;
	struct ckpt_tree_opts opts;
	bool recording;
	char **snap;  /* [0]: after open; [k + 1]: after step k */
	char **files; /* [k + 1]: the target after commit step k */
	char **recov; /* [k + 1]: the recovery file of step k */
	unsigned long points;
	char what[256];
};

struct list_ctx {
	uint64_t ids[64];
	char *names[64];
	enum ckpt_entry_kind kinds[64];
	size_t n;
};

static bool list_cb(void *ctx, const char *name, uint64_t id,
		    const struct ckpt_entry_info *info, size_t next)
{
	struct list_ctx *l = ctx;

	(void)next;
	assert_true(l->n < 64);
	l->ids[l->n] = id;
	l->names[l->n] = strdup(name);
	l->kinds[l->n] = info->kind;
	l->n++;
	return true;
}

static void list_free(struct list_ctx *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	l->n = 0;
}

/* ckpt_tree_read / ckpt_tree_write as counts: bytes, or -1 on failure. */
static ssize_t tree_read_n(struct ckpt_tree *t, uint64_t id, void *buf,
			   size_t size, uint64_t off, struct ckpt_error *err)
{
	size_t done;

	if (ckpt_tree_read(t, id, buf, size, off, &done, err))
		return -1;
	return (ssize_t)done;
}

static ssize_t tree_write_n(struct ckpt_tree *t, uint64_t id, const void *buf,
			    size_t size, uint64_t off, struct ckpt_error *err)
{
	if (ckpt_tree_write(t, id, buf, size, off, err))
		return -1;
	return (ssize_t)size;
}

static void snap_entry(struct sb *s, struct ckpt_tree *t, const char *name,
		       uint64_t id)
{
	struct ckpt_entry_info info;
	struct ckpt_error err = {0};

	sb_printf(s, "%s", name);
	if (ckpt_tree_stat(t, id, &info, NULL) != CKPT_OK) {
		sb_printf(s, " STAT-FAILED\n");
		return;
	}
	if (info.kind == CKPT_ENTRY_DIR) {
		struct list_ctx l = {.n = 0};
		sb_printf(s, " dir\n");
		ckpt_tree_list(t, id, 0, list_cb, &l, false);
		for (size_t i = 0; i < l.n; i++) {
			sb_printf(s, "  ");
			snap_entry(s, t, l.names[i], l.ids[i]);
		}
		list_free(&l);
		return;
	}
	/* not shape_explicit: a commit whose rebind fails (documented: the
	 * tree then stays on the old file) keeps an inferred shape inferred,
	 * while a rebind makes it explicit, with the same value */
	sb_printf(s, " size=%llu %s %s", (unsigned long long)info.size,
		  info.dtype, info.shape);
	{
		uint8_t *p = malloc(info.size + 1);
		ssize_t n;
		assert_non_null(p);
		n = tree_read_n(t, id, p, (size_t)info.size, 0, &err);
		if (n != (ssize_t)info.size)
			sb_printf(s, " READ-FAILED(%zd: %s)", n, err.msg);
		else
			sb_printf(s, " crc=%08x", ckpt_crc32(0, p, info.size));
		free(p);
	}
	sb_printf(s, "\n");
}

/* Names, kinds, sizes, dtypes, shapes and bytes of every entry. */
static char *snapshot(struct ckpt_tree *t)
{
	struct list_ctx l = {.n = 0};
	struct sb s = {0};

	sb_printf(&s, "count=%zu\n", ckpt_tree_count(t));
	ckpt_tree_list(t, 0, 0, list_cb, &l, false);
	for (size_t i = 0; i < l.n; i++) {
		uint64_t id;
		if (ckpt_tree_lookup(t, 0, l.names[i], &id, NULL) != CKPT_OK ||
		    id != l.ids[i])
			sb_printf(&s, "LOOKUP-MISMATCH ");
		snap_entry(&s, t, l.names[i], l.ids[i]);
	}
	list_free(&l);
	return s.p;
}

static char *describe_path(struct runner *r, const char *path)
{
	struct ckpt_open_opts o = {.key = r->sc->encrypt ? r->key : NULL};
	struct ckpt_file *f;
	struct ckpt_error err = {0};
	char *d;

	if (ckpt_open(path, &o, &f, &err) != CKPT_OK) {
		struct sb s = {0};
		sb_printf(&s, "cannot open %s: %s\n", path, err.msg);
		return s.p;
	}
	d = describe_file(f, true);
	ckpt_close(f);
	/* the number of blocks and the data bytes are the same; nothing in
	 * the description depends on the IVs */
	return d;
}

static void pattern(uint8_t *p, size_t n, size_t step, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(step * 31 + (off + i) * 7 + 1);
}

static ckpt_err lookup(struct ckpt_tree *t, const char *name, uint64_t *id,
		       struct ckpt_error *err)
{
	if (ckpt_tree_lookup(t, 0, name, id, NULL) != CKPT_OK) {
		snprintf(err->msg, sizeof(err->msg), "test: no entry '%s'",
			 name);
		err->code = CKPT_ERR_NOTFOUND;
		return CKPT_ERR_NOTFOUND;
	}
	return CKPT_OK;
}

/* Reads every entry with faults armed; the bytes must match an unarmed
 * read. */
static ckpt_err read_all(struct runner *r, struct ckpt_tree *t,
			 struct ckpt_error *err)
{
	struct list_ctx l = {.n = 0}, sub = {.n = 0};
	ckpt_err rc = CKPT_OK;
	uint64_t ids[256];
	size_t nids = 0;

	bool was = fi.armed;

	fi.armed = false;
	ckpt_tree_list(t, 0, 0, list_cb, &l, false);
	for (size_t i = 0; i < l.n; i++) {
		if (l.kinds[i] == CKPT_ENTRY_DIR) {
			ckpt_tree_list(t, l.ids[i], 0, list_cb, &sub, false);
			for (size_t k = 0; k < sub.n; k++)
				ids[nids++] = sub.ids[k];
			list_free(&sub);
		} else {
			ids[nids++] = l.ids[i];
		}
	}
	list_free(&l);
	fi.armed = was;
	for (size_t i = 0; i < nids && !rc; i++) {
		struct ckpt_entry_info info;
		uint8_t *p, *q;
		ssize_t n;

		fi.armed = false;
		assert_int_equal(ckpt_tree_stat(t, ids[i], &info, NULL),
				 CKPT_OK);
		p = malloc(info.size + 1);
		q = malloc(info.size + 1);
		assert_non_null(p);
		assert_non_null(q);
		fi.armed = was;
		n = tree_read_n(t, ids[i], p, (size_t)info.size, 0, err);
		fi.armed = false;
		if (n < 0) {
			rc = err->code ? err->code : CKPT_ERR_IO;
			if (!err->code)
				problem("%s: ckpt_tree_read returned -1 "
					"without err.code",
					r->what);
		} else if (n != (ssize_t)info.size ||
			   tree_read_n(t, ids[i], q, (size_t)info.size, 0,
				       NULL) != n ||
			   memcmp(p, q, (size_t)n) != 0) {
			problem("%s: ckpt_tree_read of entry %llu returned "
				"%zd bytes that differ from a fault-free read",
				r->what, (unsigned long long)ids[i], n);
		}
		fi.armed = was;
		free(p);
		free(q);
	}
	return rc;
}

static ckpt_err do_step(struct runner *r, struct ckpt_tree *t, size_t k,
			struct ckpt_error *err, char **recovery)
{
	const struct step *s = &r->sc->steps[k];
	uint8_t data[64];
	uint64_t id;
	ckpt_err rc;

	switch (s->op) {
	case OP_CREATE:
		return ckpt_tree_create(t, s->a, &id, err);
	case OP_WRITE: {
		ssize_t n;
		assert_true(s->len <= sizeof(data));
		pattern(data, s->len, k, s->off);
		rc = lookup(t, s->a, &id, err);
		if (rc)
			return rc;
		n = tree_write_n(t, id, data, s->len, s->off, err);
		if (n < 0)
			return err->code ? err->code : CKPT_ERR_IO;
		if (n != (ssize_t)s->len)
			problem("%s: short write %zd", r->what, n);
		return CKPT_OK;
	}
	case OP_TRUNC:
		rc = lookup(t, s->a, &id, err);
		return rc ? rc : ckpt_tree_truncate(t, id, s->off, err);
	case OP_DTYPE:
		rc = lookup(t, s->a, &id, err);
		return rc ? rc
			  : ckpt_tree_set_dtype(t, id, s->b, strlen(s->b), err);
	case OP_SHAPE:
		rc = lookup(t, s->a, &id, err);
		return rc ? rc
			  : ckpt_tree_set_shape(t, id, s->b, strlen(s->b), err);
	case OP_CLEAR_SHAPE:
		rc = lookup(t, s->a, &id, err);
		return rc ? rc : ckpt_tree_clear_shape(t, id, err);
	case OP_RENAME:
	case OP_RENAME_NOREPLACE:
		return ckpt_tree_rename(t, s->a, s->b,
					s->op == OP_RENAME_NOREPLACE, err);
	case OP_UNLINK:
		return ckpt_tree_unlink(t, s->a, err);
	case OP_COMMIT:
		return ckpt_tree_commit(t, err);
	case OP_READ_ALL:
		return read_all(r, t, err);
	case OP_RECOVERY: {
		char *lost = NULL;
		ckpt_err saved =
			ckpt_tree_save_recovery(t, recovery, &lost, err);
		if (lost) /* nothing underneath changes here */
			fail_msg("save_recovery lost parameters: %s", lost);
		return saved;
	}
	}
	return CKPT_ERR_INVAL;
}

static void compare(struct runner *r, char **slot, char *got, const char *what)
{
	if (r->recording) {
		*slot = got;
		return;
	}
	if (!*slot)
		problem("%s: %s: nothing recorded", r->what, what);
	else if (strcmp(*slot, got) != 0) {
		char w[512];
		snprintf(w, sizeof(w), "%s: %s", r->what, what);
		show_diff(w, *slot, got);
	}
	free(got);
}

static const char *commit_target(const struct runner *r)
{
	return r->sc->output ? r->out : r->src;
}

/* Puts the source in place and removes everything else. */
static void reset_dir(struct runner *r)
{
	rm_rf(r->dir);
	assert_int_equal(mkdir(r->dir, 0755), 0);
	assert_int_equal(mkdir(r->tmpdir, 0755), 0);
	if (r->sc->gen)
		write_file(r->src, r->source.p, r->source.len);
}

/* Runs the scenario with allocation fail_at failing (0: none).  Returns
 * whether the fault was reached. */
static bool run_scenario(struct runner *r, unsigned long fail_at)
{
	const struct scenario *sc = r->sc;
	struct ckpt_tree *t = NULL;
	struct ckpt_error err;
	struct usage u0;
	bool hit = false;
	ckpt_err rc;
	int p0 = problems;

	reset_dir(r);
	u0 = usage_now();
	snprintf(r->what, sizeof(r->what),
		 "tree '%s', fault %lu: "
		 "ckpt_tree_open",
		 sc->name, fail_at);
	memset(&err, 0, sizeof(err));
	arm(fail_at, false);
	rc = ckpt_tree_open(r->src, &r->opts, &t, &err);
	disarm();
	hit = fi.hit;
	if (rc != CKPT_OK) {
		if (!hit)
			problem("%s: fails without a fault: %s", r->what,
				err.msg);
		if (t)
			problem("%s: failed but *out is not NULL", r->what);
		check_failure("ckpt_tree_open", rc, &err, false);
		rc = ckpt_tree_open(r->src, &r->opts, &t, &err);
		if (rc != CKPT_OK) {
			problem("%s: the retry without faults fails: %s",
				r->what, err.msg);
			goto out;
		}
	}
	if (ckpt_tree_read_only(t)) {
		problem("%s: succeeded, but the tree is read-only: \"%s\" "
			"(a transient allocation failure made the checkpoint "
			"read-only for the whole session)",
			r->what, ckpt_tree_read_only(t));
		goto out;
	}
	compare(r, &r->snap[0], snapshot(t), "tree after open");

	/* fi.count keeps counting across the steps; a run stops at its first
	 * problem (what follows would mostly be consequences) */
	for (size_t k = 0; k < sc->nsteps && problems == p0; k++) {
		const struct step *s = &sc->steps[k];
		char *dir_before = listing(r->dir),
		     *tmp_before = listing(r->tmpdir);
		char *recovery = NULL;
		struct buf target_before = {0};
		bool had_target = read_file(commit_target(r), &target_before);
		bool step_hit;

		snprintf(r->what, sizeof(r->what),
			 "tree '%s', fault %lu: step "
			 "%zu %s(%s%s%s)",
			 sc->name, fail_at, k, op_names[s->op],
			 s->a ? s->a : "", s->b ? ", " : "", s->b ? s->b : "");
		memset(&err, 0, sizeof(err));
		fi.armed = true;
		fi.hit = false;
		rc = do_step(r, t, k, &err, &recovery);
		disarm();
		step_hit = fi.hit;
		hit |= step_hit;
		if (rc != CKPT_OK) {
			char *now;
			if (!step_hit)
				problem("%s: fails without a fault: %s",
					r->what, err.msg);
			check_failure(op_names[s->op], rc, &err, false);
			/* nothing may have changed */
			compare(r, &r->snap[k], snapshot(t),
				"tree after the failed step (must be as "
				"before it)");
			now = listing(r->dir);
			if (strcmp(now, dir_before) != 0)
				problem("%s: failed, and the directory changed:"
					"\n  before: %s\n  after:  %s",
					r->what, dir_before, now);
			free(now);
			now = listing(r->tmpdir);
			if (strcmp(now, tmp_before) != 0)
				problem("%s: failed, and $TMPDIR changed",
					r->what);
			free(now);
			if (had_target) {
				struct buf b;
				if (!read_file(commit_target(r), &b) ||
				    b.len != target_before.len ||
				    (b.len &&
				     memcmp(b.p, target_before.p, b.len) != 0))
					problem("%s: failed, and the target "
						"changed",
						r->what);
				buf_free(&b);
			}
			if (s->op == OP_COMMIT && !ckpt_tree_dirty(t))
				problem("%s: failed, and the tree is no longer "
					"dirty (the edits would not be "
					"committed again)",
					r->what);
			/* the same step again, without faults */
			memset(&err, 0, sizeof(err));
			free(recovery);
			recovery = NULL;
			rc = do_step(r, t, k, &err, &recovery);
			if (rc != CKPT_OK) {
				problem("%s: the retry without faults fails: "
					"%s",
					r->what, err.msg);
				buf_free(&target_before);
				free(dir_before);
				free(tmp_before);
				goto out;
			}
		}
		compare(r, &r->snap[k + 1], snapshot(t), "tree after the step");
		if (s->op == OP_COMMIT) {
			char *want_list, *now = listing(r->dir);
			struct sb w = {0};
			if (sc->output)
				sb_printf(&w, "out.ckpt\n");
			if (sc->gen || !sc->output)
				sb_printf(&w, "src.ckpt\n");
			sb_printf(&w, "tmp\n");
			want_list = w.p;
			if (strcmp(now, want_list) != 0)
				problem("%s: after the commit the directory "
					"holds:\n%s(expected:\n%s)",
					r->what, now, want_list);
			free(now);
			free(want_list);
			compare(r, &r->files[k + 1],
				describe_path(r, commit_target(r)),
				"the committed checkpoint");
			/* a commit whose rebind failed (a fault in it)
			 * leaves the tree dirty on purpose */
			if (!step_hit && ckpt_tree_dirty(t))
				problem("%s: the tree is still dirty after a "
					"commit that succeeded",
					r->what);
		}
		if (s->op == OP_RECOVERY) {
			if (!recovery) {
				problem("%s: no path", r->what);
			} else {
				compare(r, &r->recov[k + 1],
					describe_path(r, recovery),
					"the recovery checkpoint");
				unlink(recovery);
				free(recovery);
			}
		}
		buf_free(&target_before);
		free(dir_before);
		free(tmp_before);
	}
out:
	ckpt_tree_close(t);
	if (!r->recording)
		check_usage(r->what, fail_at, u0);
	return hit;
}

static struct ckpt_key *make_key(void)
{
	char path[PATH_MAX];
	uint8_t raw[32];
	struct ckpt_key *key = NULL;
	struct ckpt_error err = {0};
	int fd;

	for (int i = 0; i < 32; i++)
		raw[i] = (uint8_t)(i * 13 + 5);
	snprintf(path, sizeof(path), "%s/key", scratch());
	write_file(path, raw, sizeof(raw));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ckpt_key_read(fd, CKPT_ENC_AES_GCM, &key, &err),
			 CKPT_OK);
	close(fd);
	unlink(path);
	return key;
}

/* Encrypts plain (a file) into enc through a tree (like ckpt convert). */
static void encrypt_file(const char *plain, const char *enc,
			 const struct ckpt_key *key)
{
	struct ckpt_tree_opts o = {.output = enc,
				   .out_key_policy = CKPT_OUT_KEY_NEW,
				   .out_key = key};
	struct ckpt_tree *t;
	struct ckpt_error err = {0};

	if (ckpt_tree_open(plain, &o, &t, &err) != CKPT_OK)
		print_error("%s\n", err.msg);
	assert_non_null(t);
	ckpt_tree_mark_dirty(t);
	if (ckpt_tree_commit(t, &err) != CKPT_OK)
		print_error("%s\n", err.msg);
	ckpt_tree_close(t);
}

static void scenario_test(const struct scenario *sc)
{
	struct runner r = {.sc = sc};
	size_t n = sc->nsteps + 1;
	char *old_tmpdir = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;

	need_wrap();
	problems = 0;
	snprintf(r.dir, sizeof(r.dir), "%s/tree-%s", scratch(), sc->name);
	snprintf(r.tmpdir, sizeof(r.tmpdir), "%s/tmp", r.dir);
	snprintf(r.src, sizeof(r.src), "%s/src.ckpt", r.dir);
	snprintf(r.out, sizeof(r.out), "%s/out.ckpt", r.dir);
	setenv("TMPDIR", r.tmpdir, 1); /* recovery files fall back there */
	if (sc->encrypt)
		r.key = make_key();
	if (sc->gen) {
		struct buf plain = {0};
		sc->gen(&plain);
		if (sc->encrypt) {
			char p[PATH_MAX], e[PATH_MAX];
			snprintf(p, sizeof(p), "%s/plain-%s.ckpt", scratch(),
				 sc->name);
			snprintf(e, sizeof(e), "%s/enc-%s.ckpt", scratch(),
				 sc->name);
			write_file(p, plain.p, plain.len);
			encrypt_file(p, e, r.key);
			assert_true(read_file(e, &r.source));
			unlink(p);
			unlink(e);
			buf_free(&plain);
		} else {
			r.source = plain;
		}
	}
	r.opts.create = sc->gen == NULL;
	r.opts.output = sc->output ? r.out : NULL;
	r.opts.open.key = r.key;
	r.snap = calloc(n, sizeof(char *));
	r.files = calloc(n, sizeof(char *));
	r.recov = calloc(n, sizeof(char *));
	assert_non_null(r.snap);
	assert_non_null(r.files);
	assert_non_null(r.recov);

	/* the reference: no faults (twice: lazy initialisations in libc and
	 * OpenSSL happen in the first run, not in the measured ones) */
	r.recording = true;
	assert_false(run_scenario(&r, 0));
	for (size_t i = 0; i < n; i++) {
		free(r.snap[i]);
		free(r.files[i]);
		free(r.recov[i]);
		r.snap[i] = r.files[i] = r.recov[i] = NULL;
	}
	assert_false(run_scenario(&r, 0));
	r.recording = false;
	if (problems) {
		print_error("the fault-free run of '%s' has problems\n",
			    sc->name);
		fail();
	}
	for (unsigned long k = 1;; k = stride_point(k)) {
		if (!run_scenario(&r, k))
			break;
		r.points++;
	}
	total_points += r.points;
	print_message("tree scenario '%s': %zu steps, %lu fault points\n",
		      sc->name, sc->nsteps, r.points);
	for (size_t i = 0; i < n; i++) {
		free(r.snap[i]);
		free(r.files[i]);
		free(r.recov[i]);
	}
	free(r.snap);
	free(r.files);
	free(r.recov);
	buf_free(&r.source);
	ckpt_key_free(r.key);
	rm_rf(r.dir);
	if (old_tmpdir) {
		setenv("TMPDIR", old_tmpdir, 1);
		free(old_tmpdir);
	} else {
		unsetenv("TMPDIR");
	}
	assert_int_equal(problems, 0);
}

static void test_tree_plain(void **state)
{
	(void)state;
	scenario_test(&scenarios[0]);
}

static void test_tree_crc(void **state)
{
	(void)state;
	scenario_test(&scenarios[1]);
}

static void test_tree_encrypted(void **state)
{
	(void)state;
	scenario_test(&scenarios[2]);
}

static void test_tree_output(void **state)
{
	(void)state;
	scenario_test(&scenarios[3]);
}

static void test_tree_create(void **state)
{
	(void)state;
	scenario_test(&scenarios[4]);
}

/* ---- keys and encrypted files -------------------------------------------- */

static void test_key_and_encrypted_open(void **state)
{
	char keypath[PATH_MAX], plain[PATH_MAX], enc[PATH_MAX];
	struct ckpt_key *key = NULL;
	struct ckpt_error err;
	struct buf b = {0};
	unsigned long points = 0;
	ckpt_err rc;

	(void)state;
	need_wrap();
	problems = 0;
	snprintf(keypath, sizeof(keypath), "%s/k16", scratch());
	write_file(keypath, "0123456789abcdef", 16);

	/* ckpt_key_read / ckpt_key_load allocate nothing of ours (mmap) */
	for (unsigned long n = 1;; n++) {
		struct usage u0 = usage_now();
		int fd = open(keypath, O_RDONLY);
		assert_true(fd >= 0);
		memset(&err, 0, sizeof(err));
		arm(n, false);
		rc = ckpt_key_read(fd, CKPT_ENC_AES_GCM, &key, &err);
		disarm();
		close(fd);
		if (rc)
			check_failure("ckpt_key_read", rc, &err, false);
		else if (!key || ckpt_key_len(key) != 16)
			problem("ckpt_key_read: wrong key");
		ckpt_key_free(key);
		key = NULL;
		check_usage("ckpt_key_read", n, u0);
		if (!fi.hit)
			break;
		points++;
	}
	for (unsigned long n = 1;; n++) {
		struct usage u0 = usage_now();
		memset(&err, 0, sizeof(err));
		arm(n, false);
		rc = ckpt_key_load("AES-GCM", keypath, -1, &key, &err);
		disarm();
		if (rc)
			check_failure("ckpt_key_load", rc, &err, false);
		else if (!key || ckpt_key_len(key) != 16)
			problem("ckpt_key_load: wrong key");
		ckpt_key_free(key);
		key = NULL;
		check_usage("ckpt_key_load", n, u0);
		if (!fi.hit)
			break;
		points++;
	}
	print_message("keys: %lu fault points\n", points);

	key = make_key();
	snprintf(plain, sizeof(plain), "%s/plain.ckpt", scratch());
	snprintf(enc, sizeof(enc), "%s/enc.ckpt", scratch());
	gen_maps(&b);
	gen_slices(&b);
	write_file(plain, b.p, b.len);
	buf_free(&b);

	/* encrypting through a tree (what ckpt convert does), with faults */
	encrypt_file(plain, enc, key); /* warm up OpenSSL */
	for (unsigned long n = 1;; n++) {
		struct ckpt_tree_opts o = {.output = enc,
					   .out_key_policy = CKPT_OUT_KEY_NEW,
					   .out_key = key};
		struct ckpt_tree *t = NULL;
		struct usage u0;
		bool hit;
		struct buf before = {0};

		assert_true(read_file(enc, &before));
		u0 = usage_now();
		memset(&err, 0, sizeof(err));
		arm(n, false);
		rc = ckpt_tree_open(plain, &o, &t, &err);
		if (!rc) {
			ckpt_tree_mark_dirty(t);
			rc = ckpt_tree_commit(t, &err);
		}
		disarm();
		hit = fi.hit;
		if (rc) {
			struct buf after = {0};
			check_failure("encrypting commit", rc, &err, false);
			if (!read_file(enc, &after) ||
			    after.len != before.len ||
			    (after.len &&
			     memcmp(after.p, before.p, after.len) != 0))
				problem("encrypting commit, fault %lu: failed, "
					"and the target changed",
					n);
			buf_free(&after);
		} else {
			struct ckpt_open_opts ko = {.key = key};
			struct ckpt_file *f = NULL, *g = NULL;
			char *a, *c;
			assert_int_equal(ckpt_open(enc, &ko, &f, NULL),
					 CKPT_OK);
			assert_int_equal(ckpt_open(plain, NULL, &g, NULL),
					 CKPT_OK);
			a = describe_file(f, true);
			c = describe_file(g, true);
			/* the same parameters; the stats line differs */
			if (strcmp(strchr(a, '\n'), strchr(c, '\n')) != 0)
				problem("encrypting commit, fault %lu: the "
					"encrypted file holds other data",
					n);
			free(a);
			free(c);
			ckpt_close(f);
			ckpt_close(g);
		}
		ckpt_tree_close(t);
		check_usage("encrypting commit", n, u0);
		buf_free(&before);
		if (!hit)
			break;
		points++;
	}
	{
		struct ckpt_open_opts ko = {.key = key};
		points +=
			open_with_faults("AES-GCM encrypted", enc, &ko, false);
		points += open_with_faults("AES-GCM encrypted", enc, &ko, true);
	}
	total_points += points;
	print_message("keys and encrypted files: %lu fault points\n", points);
	unlink(plain);
	unlink(enc);
	unlink(keypath);
	ckpt_key_free(key);
	assert_int_equal(problems, 0);
}

/* ---- small library functions --------------------------------------------- */

static void test_names(void **state)
{
	static const char *const names[] = {"a", "a/b%c", "",
					    ".", "..",	  "x\ny"};
	unsigned long points = 0;

	(void)state;
	need_wrap();
	problems = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *nm = names[i];
		char *want = ckpt_name_escape(nm, strlen(nm)), *got, *back;
		size_t len;
		ckpt_err rc;

		assert_non_null(want);
		for (unsigned long n = 1;; n++) {
			arm(n, false);
			got = ckpt_name_escape(nm, strlen(nm));
			disarm();
			if (got && strcmp(got, want) != 0)
				problem("ckpt_name_escape(%s) wrong", nm);
			free(got);
			if (!fi.hit)
				break;
			if (got)
				problem("ckpt_name_escape: a fault but a result");
			points++;
		}
		for (unsigned long n = 1;; n++) {
			back = NULL;
			arm(n, false);
			rc = ckpt_name_unescape(want, &back, &len);
			disarm();
			if (rc == CKPT_OK &&
			    (len != strlen(nm) || memcmp(back, nm, len) != 0))
				problem("ckpt_name_unescape(%s) wrong", want);
			if (rc != CKPT_OK && rc != CKPT_ERR_NOMEM)
				problem("ckpt_name_unescape(%s), fault %lu: %s",
					want, n, ckpt_strerror(rc));
			free(back);
			if (!fi.hit)
				break;
			points++;
		}
		free(want);
	}
	total_points += points;
	print_message("name escaping: %lu fault points\n", points);
	assert_int_equal(problems, 0);
}

static int teardown_all(void **state)
{
	(void)state;
	if (scratch_root[0])
		rm_rf(scratch_root);
	print_message("test_nomem: %lu allocation failure points in all%s\n",
		      total_points,
#ifdef HAVE_ASAN
		      " (ASan build: leaks are LeakSanitizer's job)"
#else
		      ""
#endif
	);
	return 0;
}

int main(int argc, char **argv)
{
#ifndef HAVE_ASAN
	/* glibc's per-thread cache counts freed chunks as in use in
	 * mallinfo2(); without it the heap accounting is exact */
	const char *tun = getenv("GLIBC_TUNABLES");
	const char *pre = getenv("LD_PRELOAD"); /* valgrind: leave it be */
	if (argc > 0 && (!tun || !strstr(tun, "glibc.malloc.tcache_count=0")) &&
	    !(pre && strstr(pre, "vgpreload"))) {
		char env[512];
		snprintf(env, sizeof(env), "%s%sglibc.malloc.tcache_count=0",
			 tun ? tun : "", tun ? ":" : "");
		setenv("GLIBC_TUNABLES", env, 1);
		execv("/proc/self/exe", argv);
		/* if that fails, go on: the heap check may then be noisy */
	}
#else
	(void)argv;
#endif
	(void)argc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_open_real_fixtures),
		cmocka_unit_test(test_open_generated),
		cmocka_unit_test(test_key_and_encrypted_open),
		cmocka_unit_test(test_tree_plain),
		cmocka_unit_test(test_tree_crc),
		cmocka_unit_test(test_tree_encrypted),
		cmocka_unit_test(test_tree_output),
		cmocka_unit_test(test_tree_create),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
