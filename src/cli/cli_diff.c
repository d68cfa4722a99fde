/*
 * cli_diff.c - ckpt diff A B: what differs between two checkpoints, as
 * h5diff tells it for HDF5 files (see cli.h).
 *
 * Parameters are matched by name.  Reported: those only in A, only in B,
 * those whose dtype or shape changed (their values are not compared), and
 * for equal dtype and shape whether the bytes differ; for numeric dtypes
 * also how many elements differ beyond the tolerances and the largest
 * absolute and relative difference.  An element a of A and b of B are
 * equal as numpy.isclose(a, b, rtol, atol) has them: |a - b| <= atol +
 * rtol * |b|, infinities only equal to themselves, NaN never equal
 * (--equal-nan: NaN equal to NaN).  With atol and rtol 0 (the default)
 * that is exact equality of values: -0.0 equals 0.0, as in numpy.
 *
 * Streams: each pair of tensors is read in blocks of DIFF_BLOCK bytes,
 * so memory stays constant whatever the sizes (the --json document grows
 * with the number of differing parameters only).  Exit status as diff(1)
 * and cmp(1): 0 the same, 1 different, 2 trouble.  Single-threaded.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define DIFF_BLOCK (1u << 20)

/* How two tensors of the same dtype and shape compare. */
struct tensor_diff {
	uint64_t count;	     /* elements (or bytes, when not numeric) */
	uint64_t differ;     /* of them beyond the tolerances */
	uint64_t nan_differ; /* of those, where exactly one side is NaN */
	uint64_t nan_both;   /* ... where both are (without --equal-nan) */
	long double max_abs, max_rel;
	bool numeric;
};

/* One run of the command: options, open files, totals, output. */
struct diff_run {
	const struct cli *c;
	struct ckpt_file *a, *b;
	double atol, rtol;
	bool equal_nan;
	uint64_t only_a, only_b, changed, differ, equal;
	json_t *doc; /* --json: the document being built, else NULL */
	unsigned char *buf_a, *buf_b;
};

/* ---- element values ----------------------------------------------------- */

/* IEEE binary16 bits as a double. */
static double half_value(uint16_t h)
{
	int exp = (h >> 10) & 0x1f;
	double mant = h & 0x3ff;
	double v;

	if (exp == 0x1f)
		v = mant != 0 ? NAN : INFINITY;
	else if (exp == 0)
		v = ldexp(mant, -24);
	else
		v = ldexp(mant + 1024, exp - 25);
	return (h & 0x8000) ? -v : v;
}

/* bfloat16 bits as a double (the upper half of a float32). */
static double bf16_value(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* Element size of the dtypes compared as numbers (ckpt_dtype_size; for
 * complex ones real and imaginary part together, see is_complex), 0 for
 * the others: those are compared byte by byte. */
static size_t numeric_size(ckpt_dtype dt)
{
	switch (dt) {
	case CKPT_DT_BOOL:
	case CKPT_DT_INT4: /* one int8 per element */
	case CKPT_DT_INT8:
	case CKPT_DT_INT16:
	case CKPT_DT_INT32:
	case CKPT_DT_INT64:
	case CKPT_DT_UINT8:
	case CKPT_DT_UINT16:
	case CKPT_DT_UINT32:
	case CKPT_DT_UINT64:
	case CKPT_DT_FLOAT16:
	case CKPT_DT_BFLOAT16:
	case CKPT_DT_FLOAT32:
	case CKPT_DT_FLOAT64:
	case CKPT_DT_COMPLEX64:
	case CKPT_DT_COMPLEX128:
		return ckpt_dtype_size(dt);
	default:
		return 0;
	}
}

static bool is_complex(ckpt_dtype dt)
{
	return dt == CKPT_DT_COMPLEX64 || dt == CKPT_DT_COMPLEX128;
}

/* The value of the little-endian element at p of dtype dt (for complex
 * dtypes the real or imaginary part at p).  A long double holds every
 * int64 and uint64 exactly, so integers compare exactly. */
static long double value_at(ckpt_dtype dt, const unsigned char *p)
{
	union {
		int8_t i8;
		int16_t i16;
		int32_t i32;
		int64_t i64;
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
		float f;
		double d;
	} u;

	memcpy(&u, p, numeric_size(dt) / (is_complex(dt) ? 2 : 1));
	switch (dt) {
	case CKPT_DT_BOOL:
	case CKPT_DT_UINT8:
		return *p;
	case CKPT_DT_INT4:
	case CKPT_DT_INT8:
		return u.i8;
	case CKPT_DT_INT16:
		return u.i16;
	case CKPT_DT_UINT16:
		return u.u16;
	case CKPT_DT_FLOAT16:
		return half_value(u.u16);
	case CKPT_DT_BFLOAT16:
		return bf16_value(u.u16);
	case CKPT_DT_INT32:
		return u.i32;
	case CKPT_DT_UINT32:
		return u.u32;
	case CKPT_DT_FLOAT32:
	case CKPT_DT_COMPLEX64:
		return u.f;
	case CKPT_DT_INT64:
		return u.i64;
	case CKPT_DT_UINT64:
		return u.u64;
	default: /* FLOAT64, COMPLEX128 */
		return u.d;
	}
}

/* Element i of the block at p as a complex number (re, im); im is 0 for
 * real dtypes. */
static void element(ckpt_dtype dt, const unsigned char *p, size_t esize,
		    long double *re, long double *im)
{
	if (is_complex(dt)) {
		*re = value_at(dt, p);
		*im = value_at(dt, p + esize / 2);
	} else {
		*re = value_at(dt, p);
		*im = 0;
	}
}

/* Compares one element pair as numpy.isclose does and records it. */
static void compare_element(const struct diff_run *r, struct tensor_diff *d,
			    long double ar, long double ai, long double br,
			    long double bi)
{
	bool a_nan = isnan(ar) || isnan(ai), b_nan = isnan(br) || isnan(bi);
	long double dist, size_b, rel;

	if (a_nan || b_nan) {
		if (a_nan && b_nan && r->equal_nan)
			return;
		d->differ++;
		if (a_nan != b_nan)
			d->nan_differ++;
		else
			d->nan_both++;
		return;
	}
	if (ar == br && ai == bi) /* also equal infinities */
		return;
	dist = hypotl(ar - br, ai - bi);
	size_b = hypotl(br, bi);
	if (isfinite(dist) && dist <= r->atol + r->rtol * size_b)
		return;
	d->differ++;
	rel = size_b == 0 || !isfinite(dist) ? INFINITY : dist / size_b;
	if (dist > d->max_abs)
		d->max_abs = dist;
	if (rel > d->max_rel)
		d->max_rel = rel;
}

/* True if dt can hold NaN. */
static bool has_nan(ckpt_dtype dt)
{
	switch (dt) {
	case CKPT_DT_FLOAT16:
	case CKPT_DT_BFLOAT16:
	case CKPT_DT_FLOAT32:
	case CKPT_DT_FLOAT64:
	case CKPT_DT_COMPLEX64:
	case CKPT_DT_COMPLEX128:
		return true;
	default:
		return false;
	}
}

/* Compares n bytes of the blocks pa and pb into d.  Equal bytes are equal
 * elements, except a NaN: as in numpy it differs even from the same NaN,
 * unless --equal-nan. */
static void compare_block(const struct diff_run *r, ckpt_dtype dt,
			  const unsigned char *pa, const unsigned char *pb,
			  size_t n, struct tensor_diff *d)
{
	size_t esize = numeric_size(dt);
	bool nan_matters = has_nan(dt) && !r->equal_nan;
	long double ar, ai, br, bi;

	if (!memcmp(pa, pb, n) && !nan_matters)
		return;
	if (!d->numeric) {
		for (size_t i = 0; i < n; i++)
			d->differ += pa[i] != pb[i];
		return;
	}
	for (size_t i = 0; i + esize <= n; i += esize) {
		element(dt, pa + i, esize, &ar, &ai);
		if (!memcmp(pa + i, pb + i, esize) &&
		    !(nan_matters && (isnan(ar) || isnan(ai))))
			continue;
		element(dt, pb + i, esize, &br, &bi);
		compare_element(r, d, ar, ai, br, bi);
	}
}

/* Reads ta of A and tb of B (same dtype, same size) block by block and
 * compares them into d; 2 after a message if a read fails. */
static int compare_tensors(struct diff_run *r, const struct ckpt_tensor *ta,
			   const struct ckpt_tensor *tb, struct tensor_diff *d)
{
	size_t esize = numeric_size(ta->dtype);
	size_t block = esize ? DIFF_BLOCK / 16 * 16 : DIFF_BLOCK;
	struct ckpt_error err;
	size_t na, nb;

	memset(d, 0, sizeof(*d));
	d->numeric = esize != 0;
	d->count = esize ? ta->size / esize : ta->size;
	for (uint64_t off = 0; off < ta->size; off += na) {
		if (ckpt_tensor_read(r->a, ta, r->buf_a, block, off, &na,
				     &err) ||
		    ckpt_tensor_read(r->b, tb, r->buf_b, block, off, &nb,
				     &err)) {
			cli_report(&err);
			return 2;
		}
		if (na == 0 || na != nb) {
			fprintf(stderr, "ckpt: a tensor ended early\n");
			return 2;
		}
		compare_block(r, ta->dtype, r->buf_a, r->buf_b, na, d);
	}
	return 0;
}

/* ---- reporting ---------------------------------------------------------- */

/* A JSON number for v, or null for an infinity (JSON has none). */
static json_t *json_num(long double v)
{
	return isfinite(v) ? json_real((double)v) : json_null();
}

/* Appends obj to the array key of the document (taking obj). */
static void add_json(struct diff_run *r, const char *key, json_t *obj)
{
	json_array_append_new(json_object_get(r->doc, key), obj);
}

/* Reports a name found on one side only. */
static void report_only(struct diff_run *r, const char *name, bool in_a)
{
	if (in_a)
		r->only_a++;
	else
		r->only_b++;
	if (r->doc)
		add_json(r, in_a ? "only_in_a" : "only_in_b",
			 cli_json_text(name, strlen(name)));
	else if (!r->c->quiet)
		printf("only in %s: %s\n", in_a ? "A" : "B", name);
}

/* Reports a change of dtype or shape. */
static void report_changed(struct diff_run *r, const char *name,
			   const struct ckpt_tensor *ta,
			   const struct ckpt_tensor *tb)
{
	char sa[256], sb[256];
	const char *da = ckpt_dtype_name(ta->dtype);
	const char *db = ckpt_dtype_name(tb->dtype);

	r->changed++;
	ckpt_shape_format(ta->dims, ta->ndims, sa, sizeof(sa));
	ckpt_shape_format(tb->dims, tb->ndims, sb, sizeof(sb));
	if (r->doc) {
		add_json(r, "changed",
			 json_pack("{s:o, s:[s,s], s:[s,s]}", "name",
				   cli_json_text(name, strlen(name)), "dtype",
				   da, db, "shape", sa, sb));
		return;
	}
	if (r->c->quiet)
		return;
	if (ta->dtype != tb->dtype)
		printf("dtype: %s: %s -> %s\n", name, da, db);
	if (strcmp(sa, sb))
		printf("shape: %s: %s -> %s\n", name, sa, sb);
}

/* Reports values that differ. */
static void report_values(struct diff_run *r, const char *name,
			  const struct ckpt_tensor *t,
			  const struct tensor_diff *d)
{
	const char *dt = ckpt_dtype_name(t->dtype);

	r->differ++;
	if (r->doc) {
		json_t *o = json_pack("{s:o, s:s, s:s, s:I, s:I}", "name",
				      cli_json_text(name, strlen(name)),
				      "dtype", dt, "unit",
				      d->numeric ? "elements" : "bytes",
				      "count", (json_int_t)d->count, "differ",
				      (json_int_t)d->differ);
		if (d->numeric) {
			json_object_set_new(
				o, "nan_differ",
				json_integer((json_int_t)d->nan_differ));
			json_object_set_new(
				o, "nan_both",
				json_integer((json_int_t)d->nan_both));
			json_object_set_new(o, "max_abs", json_num(d->max_abs));
			json_object_set_new(o, "max_rel", json_num(d->max_rel));
		}
		add_json(r, "differ", o);
		return;
	}
	if (r->c->quiet)
		return;
	printf("values: %s: %llu of %llu %s differ", name,
	       (unsigned long long)d->differ, (unsigned long long)d->count,
	       d->numeric ? "elements" : "bytes");
	if (d->numeric && d->differ > d->nan_differ + d->nan_both)
		printf(", max abs %.9Lg, max rel %.9Lg", d->max_abs,
		       d->max_rel);
	if (d->nan_differ)
		printf(", %llu where only one is NaN",
		       (unsigned long long)d->nan_differ);
	if (d->nan_both)
		printf(", %llu where both are NaN (equal with --equal-nan)",
		       (unsigned long long)d->nan_both);
	printf(" (%s)\n", dt);
}

/* ---- parameters ---------------------------------------------------------- */

/* Compares tensor ta of A with tb of B, named name; 0, or 2 on trouble. */
static int diff_tensor(struct diff_run *r, const char *name,
		       const struct ckpt_tensor *ta,
		       const struct ckpt_tensor *tb)
{
	char sa[256], sb[256];
	struct tensor_diff d;
	int rc;

	ckpt_shape_format(ta->dims, ta->ndims, sa, sizeof(sa));
	ckpt_shape_format(tb->dims, tb->ndims, sb, sizeof(sb));
	if (ta->dtype != tb->dtype || strcmp(sa, sb) || ta->size != tb->size) {
		report_changed(r, name, ta, tb);
		return 0;
	}
	rc = compare_tensors(r, ta, tb, &d);
	if (rc)
		return rc;
	if (d.differ)
		report_values(r, name, ta, &d);
	else
		r->equal++;
	return 0;
}

/* Compares parameter pa of A with pb of B; 0, or 2 on trouble. */
static int diff_param(struct diff_run *r, const struct ckpt_param *pa,
		      const struct ckpt_param *pb)
{
	char sub[4096];
	int rc = 0;

	if (pa->kind == CKPT_PARAM_TENSOR && pb->kind == CKPT_PARAM_TENSOR)
		return diff_tensor(r, pa->fname, &pa->tensor, &pb->tensor);
	if (pa->kind != pb->kind) {
		report_changed(
			r, pa->fname,
			pa->kind == CKPT_PARAM_MAP ? &pa->map[0] : &pa->tensor,
			pb->kind == CKPT_PARAM_MAP ? &pb->map[0] : &pb->tensor);
		return 0;
	}
	for (int k = 0; k < CKPT_MAP_NTENSORS && !rc; k++) {
		snprintf(sub, sizeof(sub), "%s/%s", pa->fname,
			 ckpt_map_names[k]);
		rc = diff_tensor(r, sub, &pa->map[k], &pb->map[k]);
	}
	return rc;
}

/* True if the parameter shown as fname is one --param asked for (or no
 * --param was given). */
static bool wanted(const struct cli *c, const char *fname)
{
	if (!c->nparams)
		return true;
	for (size_t i = 0; i < c->nparams; i++)
		if (!strcmp(c->params[i], fname))
			return true;
	return false;
}

/* Every --param names a parameter of A or B; 2 after a message if not. */
static int check_params(const struct diff_run *r)
{
	for (size_t i = 0; i < r->c->nparams; i++) {
		const char *n = r->c->params[i];

		if (ckpt_find(r->a, n) < 0 && ckpt_find(r->b, n) < 0) {
			fprintf(stderr,
				"ckpt: no parameter '%s' in either file (names "
				"as 'ckpt ls' shows them)\n",
				n);
			return 2;
		}
	}
	return 0;
}

/* Walks A, then what only B has; 0, or 2 on trouble. */
static int diff_files(struct diff_run *r)
{
	int rc = check_params(r);

	for (size_t i = 0; i < ckpt_count(r->a) && !rc; i++) {
		const struct ckpt_param *pa = ckpt_param_at(r->a, i);
		ssize_t j;

		if (!wanted(r->c, pa->fname))
			continue;
		j = ckpt_find(r->b, pa->fname);
		if (j < 0)
			report_only(r, pa->fname, true);
		else
			rc = diff_param(r, pa, ckpt_param_at(r->b, (size_t)j));
	}
	for (size_t i = 0; i < ckpt_count(r->b) && !rc; i++) {
		const struct ckpt_param *pb = ckpt_param_at(r->b, i);

		if (wanted(r->c, pb->fname) && ckpt_find(r->a, pb->fname) < 0)
			report_only(r, pb->fname, false);
	}
	return rc;
}

/* ---- the command ------------------------------------------------------- */

/* Opens path with key (NULL: none); 2 after a message. */
static int open_side(const struct cli *c, const char *path,
		     const struct ckpt_key *key, struct ckpt_file **f)
{
	struct ckpt_open_opts oo = {
		.key = key, .skip_crc = c->ignore_crc, .format = c->format};
	struct ckpt_error err;

	if (ckpt_open(path, &oo, f, &err) == CKPT_OK)
		return 0;
	cli_report(&err);
	return 2;
}

/* The summary: a last line, or the --json document on stdout. */
static void print_summary(struct diff_run *r)
{
	bool same = !(r->only_a || r->only_b || r->changed || r->differ);

	if (r->doc) {
		json_object_set_new(r->doc, "same", json_boolean(same));
		json_object_set_new(r->doc, "equal",
				    json_integer((json_int_t)r->equal));
		json_dumpf(r->doc, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
		putchar('\n');
	} else if (!r->c->quiet) {
		printf("%s: %llu only in A, %llu only in B, %llu changed dtype "
		       "or shape, %llu with other values, %llu equal\n",
		       same ? "same" : "different",
		       (unsigned long long)r->only_a,
		       (unsigned long long)r->only_b,
		       (unsigned long long)r->changed,
		       (unsigned long long)r->differ,
		       (unsigned long long)r->equal);
	}
}

/* The --json document before the parameters: the files, the tolerances
 * and the empty lists. */
static json_t *new_doc(const struct diff_run *r, char **argv)
{
	return json_pack("{s:o, s:o, s:f, s:f, s:b, s:[], s:[], s:[], s:[]}",
			 "a", cli_json_text(argv[0], strlen(argv[0])), "b",
			 cli_json_text(argv[1], strlen(argv[1])), "atol",
			 r->atol, "rtol", r->rtol, "equal_nan", r->equal_nan,
			 "only_in_a", "only_in_b", "changed", "differ");
}

int cmd_diff(struct cli *c, int argc, char **argv)
{
	struct diff_run r = {.c = c,
			     .atol = c->atol,
			     .rtol = c->rtol,
			     .equal_nan = c->equal_nan};
	int rc = 2;

	if (argc != 2)
		return -1;
	r.buf_a = malloc(DIFF_BLOCK);
	r.buf_b = malloc(DIFF_BLOCK);
	if (!r.buf_a || !r.buf_b) {
		fprintf(stderr, "ckpt: out of memory\n");
		goto out;
	}
	if (open_side(c, argv[0], c->key, &r.a))
		goto out;
	if (open_side(c, argv[1], c->out_key ? c->out_key : c->key, &r.b))
		goto out;
	if (c->json && !(r.doc = new_doc(&r, argv))) {
		fprintf(stderr, "ckpt: out of memory\n");
		goto out;
	}
	rc = diff_files(&r);
	if (rc)
		goto out;
	print_summary(&r);
	rc = (r.only_a || r.only_b || r.changed || r.differ) ? 1 : 0;
	if (fflush(stdout))
		rc = 2;
out:
	json_decref(r.doc);
	if (r.b)
		ckpt_close(r.b);
	if (r.a)
		ckpt_close(r.a);
	free(r.buf_a);
	free(r.buf_b);
	return rc;
}
