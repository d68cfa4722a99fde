/*
 * cli_editops.c - the edits of ckpt rm, mv, set, put and edit on an open
 * tree, and the edit list 'ckpt edit' reads (see cli.h and cli_edit.c).
 *
 * Owns what one edit does to the tree, as the mount's requests do it
 * (src/fuse/ops.c, xattr.c): rm is an unlink, mv a rename (noreplace
 * without --force), set the setxattr of user.dtype then of user.shape,
 * put an open with O_TRUNC (or a create) and writes from offset 0, then
 * the same setxattrs; so a commit writes the same bytes as the same
 * edits through a mount.  Also owns the grammar of the edit list (see
 * cli_ops_parse) and the typed spelling of names (cli_shown_name).
 *
 * Never commits, never changes a checkpoint file: a failed edit leaves
 * the tree as the library leaves it, and the caller closes it without
 * committing.  Data is copied in chunks of CHUNK bytes, never whole.
 * Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_npy.h"
#include "ckpt_tree.h"
#include "cli.h"

#define CHUNK (1u << 20)
#define SEPS " \t"

/* "ckpt: " and, for an operation of an edit list, "line N: ", then the
 * message. */
static void say(const struct cli_op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(const struct cli_op *op, const char *fmt, ...)
{
	va_list ap;

	fputs("ckpt: ", stderr);
	if (op->line)
		fprintf(stderr, "line %u: ", op->line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A library failure of op on file: 1 after the message. */
static int fail(const struct cli_op *op, const char *file,
		const struct ckpt_error *err)
{
	char text[1024];

	if (err->code == CKPT_ERR_NOTFOUND)
		say(op, "%s: no parameter named '%s' (see 'ckpt ls %s')", file,
		    op->name, file);
	else if (err->code == CKPT_ERR_EXISTS && op->verb == CLI_OP_MV)
		say(op, "%s: '%s' exists (--force replaces it)", file, op->to);
	else
		say(op, "%s",
		    ckpt_error_text(err, CKPT_FRONT_CLI, text, sizeof(text)));
	return 1;
}

/* ---- names -------------------------------------------------------------- */

/* Appends the shown spelling of the len bytes at seg to s; false if they
 * are no name (a '%' without two hex digits) or out of memory. */
static bool append_shown(char **s, size_t *n, const char *seg, size_t len)
{
	char *typed = strndup(seg, len), *name = NULL, *shown = NULL, *ns;
	size_t nlen;
	bool ok = false;

	if (!typed || ckpt_name_decode(typed, &name, &nlen))
		goto out;
	shown = ckpt_name_escape(name, nlen);
	ns = shown ? realloc(*s, *n + strlen(shown) + 2) : NULL;
	if (!ns)
		goto out;
	*s = ns;
	strcpy(*s + *n, shown);
	*n += strlen(shown);
	ok = true;
out:
	free(typed);
	free(name);
	free(shown);
	return ok;
}

int cli_shown_name(const char *typed, char **shown)
{
	const char *p = typed, *slash;
	size_t n = 0;
	char *s = calloc(1, 1);

	for (; s; p = slash + 1) {
		slash = strchr(p, '/');
		if (!append_shown(&s, &n, p,
				  slash ? (size_t)(slash - p) : strlen(p)))
			break;
		if (!slash) {
			*shown = s;
			return 0;
		}
		s[n++] = '/';
		s[n] = '\0';
	}
	free(s);
	fprintf(stderr,
		"ckpt: '%s' is not a parameter name: write it as 'ckpt ls' "
		"shows it ('%%' as %%25, '/' as %%2F; any byte may be written "
		"%%XX, a space as %%20)\n",
		typed);
	return 2;
}

/* ---- the edits ---------------------------------------------------------- */

/* Sets the dtype, then the shape, op gives of id (as setfattr of
 * user.dtype, then of user.shape). */
static ckpt_err set_meta(struct ckpt_tree *t, uint64_t id,
			 const struct cli_op *op, struct ckpt_error *err)
{
	ckpt_err r = CKPT_OK;

	if (op->dtype)
		r = ckpt_tree_set_dtype(t, id, op->dtype, strlen(op->dtype),
					err);
	if (!r && op->shape)
		r = ckpt_tree_set_shape(t, id, op->shape, strlen(op->shape),
					err);
	return r;
}

/* One read(2) of at most cap bytes of op's data from fd (retried on
 * EINTR), its count in *n (0 at the end of the data); 0, or 1 after a
 * message. */
static int read_data(int fd, char *buf, size_t cap, const struct cli_op *op,
		     size_t *n)
{
	ssize_t r;

	do
		r = read(fd, buf, cap);
	while (r < 0 && errno == EINTR);
	if (r >= 0) {
		*n = (size_t)r;
		return 0;
	}
	say(op, "reading the data of '%s' from %s: %s", op->name,
	    op->path ? op->path : "standard input", strerror(errno));
	return 1;
}

/* Copies everything fd still holds into id from offset *off on (id holds
 * *off bytes), adding what it copies to *off. */
static int copy_in(struct ckpt_tree *t, uint64_t id, int fd,
		   const struct cli_op *op, const char *file, char *buf,
		   uint64_t *off)
{
	struct ckpt_error err;
	size_t n;

	for (;;) {
		if (read_data(fd, buf, CHUNK, op, &n))
			return 1;
		if (!n)
			return 0;
		if (ckpt_tree_write(t, id, buf, n, *off, &err))
			return fail(op, file, &err);
		*off += n;
	}
}

/* Reads from fd into buf until it is full (CHUNK bytes) or the data
 * ends; the count in *have. */
static int fill(int fd, char *buf, size_t *have, const struct cli_op *op)
{
	size_t n;

	for (*have = 0; *have < CHUNK; *have += n) {
		if (read_data(fd, buf + *have, CHUNK - *have, op, &n))
			return 1;
		if (!n)
			break;
	}
	return 0;
}

/* put --npy: the data of fd is a .npy file.  Parses its header, writes
 * the data after it into id, then the rest of fd, and sets the dtype and
 * shape the header gives; refuses data of another length than the header
 * says. */
static int copy_in_npy(struct ckpt_tree *t, uint64_t id, int fd,
		       const struct cli_op *op, const char *file, char *buf)
{
	struct ckpt_npy_info info;
	struct ckpt_error err;
	char shape[CKPT_NPY_MAX_DIMS * 21 + 3]; /* "[d,d,...]" */
	uint64_t off = 0;
	size_t have;

	if (fill(fd, buf, &have, op))
		return 1;
	if (ckpt_npy_parse(buf, have, &info, &err)) {
		say(op,
		    "the data of '%s' is not a .npy file MindSpore can "
		    "hold: %s",
		    op->name, err.msg);
		return 1;
	}
	if (have > info.header_len &&
	    ckpt_tree_write(t, id, buf + info.header_len,
			    have - info.header_len, 0, &err))
		return fail(op, file, &err);
	off = have - info.header_len;
	if (copy_in(t, id, fd, op, file, buf, &off))
		return 1;
	if (off != info.size) {
		say(op,
		    "the .npy data of '%s' holds %llu bytes after its "
		    "header, which announces %llu: the file is cut short "
		    "or has bytes appended",
		    op->name, (unsigned long long)off,
		    (unsigned long long)info.size);
		return 1;
	}
	ckpt_shape_format(info.dims, info.ndims, shape, sizeof(shape));
	if (ckpt_tree_set_dtype(t, id, ckpt_dtype_name(info.dtype),
				strlen(ckpt_dtype_name(info.dtype)), &err) ||
	    ckpt_tree_set_shape(t, id, shape, strlen(shape), &err))
		return fail(op, file, &err);
	return 0;
}

/* put: the parameter emptied, or created, then filled from fd. */
static int put_from(struct ckpt_tree *t, const struct cli_op *op,
		    const char *file, int fd)
{
	struct ckpt_error err;
	char *buf = malloc(CHUNK);
	uint64_t id = 0;
	int r = 1;

	if (!buf) {
		say(op, "out of memory");
		return 1;
	}
	if (ckpt_tree_lookup(t, 0, op->name, &id, &err) == CKPT_OK) {
		if (ckpt_tree_truncate(t, id, 0, &err)) {
			r = fail(op, file, &err);
			goto out;
		}
	} else if (ckpt_tree_create(t, op->name, &id, &err)) {
		id = 0;
		r = fail(op, file, &err);
		goto out;
	}
	if (op->npy) {
		r = copy_in_npy(t, id, fd, op, file, buf);
	} else {
		uint64_t off = 0;
		r = copy_in(t, id, fd, op, file, buf, &off);
		if (!r && set_meta(t, id, op, &err))
			r = fail(op, file, &err);
	}
out:
	if (id)
		ckpt_tree_forget(t, id, 1);
	free(buf);
	return r;
}

/* put: the bytes from op->path, or from standard input. */
static int put(struct ckpt_tree *t, const struct cli_op *op, const char *file)
{
	int fd = op->path ? open(op->path, O_RDONLY | O_CLOEXEC) : 0;
	int r;

	if (fd < 0) {
		say(op, "cannot open %s (the data of '%s'): %s", op->path,
		    op->name, strerror(errno));
		return 1;
	}
	r = put_from(t, op, file, fd);
	if (op->path)
		close(fd);
	return r;
}

/* set: the dtype and/or shape of an existing parameter. */
static int set(struct ckpt_tree *t, const struct cli_op *op, const char *file)
{
	struct ckpt_error err;
	uint64_t id;
	int r = 0;

	if (ckpt_tree_lookup(t, 0, op->name, &id, &err))
		return fail(op, file, &err);
	if (set_meta(t, id, op, &err))
		r = fail(op, file, &err);
	ckpt_tree_forget(t, id, 1);
	return r;
}

int cli_op_apply(struct ckpt_tree *t, const struct cli_op *op, bool force,
		 const char *file)
{
	struct ckpt_error err;

	switch (op->verb) {
	case CLI_OP_RM:
		return ckpt_tree_unlink(t, op->name, &err)
			       ? fail(op, file, &err)
			       : 0;
	case CLI_OP_MV:
		return ckpt_tree_rename(t, op->name, op->to, !force, &err)
			       ? fail(op, file, &err)
			       : 0;
	case CLI_OP_SET:
		return set(t, op, file);
	case CLI_OP_PUT:
		break;
	}
	return put(t, op, file);
}

/* ---- making operations -------------------------------------------------- */

/* A malloc'd copy of s into *out (NULL stays NULL); false if out of
 * memory. */
static bool dup_opt(const char *s, char **out)
{
	*out = s ? strdup(s) : NULL;
	return !s || *out;
}

int cli_op_make(struct cli_op *op, enum cli_op_verb verb, const char *name,
		const char *to, const char *dtype, const char *shape,
		unsigned line)
{
	int r;

	*op = (struct cli_op){.verb = verb, .line = line};
	r = cli_shown_name(name, &op->name);
	if (!r && to)
		r = cli_shown_name(to, &op->to);
	if (!r &&
	    (!dup_opt(dtype, &op->dtype) || !dup_opt(shape, &op->shape))) {
		fprintf(stderr, "ckpt: out of memory\n");
		r = 1;
	}
	if (r)
		cli_op_free(op);
	return r;
}

void cli_op_free(struct cli_op *op)
{
	free(op->name);
	free(op->to);
	free(op->dtype);
	free(op->shape);
	free(op->path);
	*op = (struct cli_op){0};
}

/* ---- the edit list ------------------------------------------------------ */

/* The words of one line. */
struct words {
	char *w[8];
	int n;
};

/* Splits line at spaces and tabs into ws; false if it has more words than
 * any operation takes. */
static bool split(char *line, struct words *ws)
{
	char *save = NULL, *w;

	ws->n = 0;
	for (w = strtok_r(line, SEPS, &save); w;
	     w = strtok_r(NULL, SEPS, &save)) {
		if (ws->n == (int)(sizeof(ws->w) / sizeof(*ws->w)))
			return false;
		ws->w[ws->n++] = w;
	}
	return true;
}

/* Reads dtype=T, shape=S and (when npy is not NULL: put) the word npy
 * from words w[0..n) into *dtype, *shape, *npy; 0, or 2 after a
 * message. */
static int parse_meta(char *const *w, int n, unsigned line, const char **dtype,
		      const char **shape, bool *npy)
{
	for (int i = 0; i < n; i++) {
		const char **v = !strncmp(w[i], "dtype=", 6)   ? dtype
				 : !strncmp(w[i], "shape=", 6) ? shape
							       : NULL;
		if (!v && npy && !*npy && !strcmp(w[i], "npy")) {
			*npy = true;
			continue;
		}
		if (!v || *v) {
			fprintf(stderr,
				"ckpt: line %u: '%s': expected dtype=T or "
				"shape=S%s, each at most once\n",
				line, w[i], npy ? " or npy" : "");
			return 2;
		}
		*v = w[i] + 6;
	}
	if (npy && *npy && (*dtype || *shape)) {
		fprintf(stderr,
			"ckpt: line %u: put ... npy takes the dtype and shape "
			"from the .npy header: no dtype= or shape=\n",
			line);
		return 2;
	}
	return 0;
}

/* The file a put of the edit list reads (typed with %XX like a name):
 * a malloc'd path in *path; 0, or 2 after a message. */
static int parse_path(const char *typed, unsigned line, char **path)
{
	size_t len;

	if (ckpt_name_decode(typed, path, &len) == CKPT_OK &&
	    strlen(*path) == len && len)
		return 0;
	free(*path);
	*path = NULL;
	fprintf(stderr,
		"ckpt: line %u: '%s' is not a path (write a space as %%20 "
		"and '%%' as %%25; no %%00)\n",
		line, typed);
	return 2;
}

/* What each verb takes: words after the verb (without dtype=/shape=). */
static const struct verb {
	const char *name, *usage;
	enum cli_op_verb verb;
	int args;      /* names (and for put the path) */
	int meta, min; /* dtype=/shape= words allowed, and needed */
} verbs[] = {
	{"rm", "rm NAME", CLI_OP_RM, 1, 0, 0},
	{"mv", "mv OLD NEW", CLI_OP_MV, 2, 0, 0},
	{"set", "set NAME [dtype=T] [shape=S]", CLI_OP_SET, 1, 2, 1},
	{"put", "put NAME PATH [dtype=T] [shape=S] | put NAME PATH npy",
	 CLI_OP_PUT, 2, 2, 0},
};

/* The operation of the words of line; 0, or 2 after a message. */
static int parse_words(const struct words *ws, unsigned line, struct cli_op *op)
{
	const struct verb *v = NULL;
	const char *dtype = NULL, *shape = NULL;
	bool npy = false;
	int extra, r;

	for (size_t i = 0; i < sizeof(verbs) / sizeof(*verbs); i++)
		if (!strcmp(ws->w[0], verbs[i].name))
			v = &verbs[i];
	if (!v) {
		fprintf(stderr,
			"ckpt: line %u: unknown operation '%s' (rm, mv, set, "
			"put)\n",
			line, ws->w[0]);
		return 2;
	}
	extra = ws->n - 1 - v->args;
	if (extra < v->min || extra > v->meta) {
		fprintf(stderr, "ckpt: line %u: expected '%s'\n", line,
			v->usage);
		return 2;
	}
	r = parse_meta(ws->w + 1 + v->args, extra, line, &dtype, &shape,
		       v->verb == CLI_OP_PUT ? &npy : NULL);
	if (!r)
		r = cli_op_make(op, v->verb, ws->w[1],
				v->verb == CLI_OP_MV ? ws->w[2] : NULL, dtype,
				shape, line);
	if (!r && v->verb == CLI_OP_PUT) {
		op->npy = npy;
		r = parse_path(ws->w[2], line, &op->path);
		if (r)
			cli_op_free(op);
	}
	return r;
}

/* Appends the operation of line number no (text, which it cuts into
 * words) to *ops, unless it is blank or a comment; 0, or the exit status
 * after a message. */
static int parse_line(char *text, unsigned no, struct cli_op **ops, size_t *n)
{
	struct words ws;
	struct cli_op *nops;
	int r;

	text[strcspn(text, "\r\n")] = '\0';
	text += strspn(text, SEPS);
	if (!*text || *text == '#')
		return 0;
	if (!split(text, &ws)) {
		fprintf(stderr, "ckpt: line %u: too many words\n", no);
		return 2;
	}
	nops = realloc(*ops, (*n + 1) * sizeof(**ops));
	if (!nops) {
		fprintf(stderr, "ckpt: out of memory\n");
		return 1;
	}
	*ops = nops;
	r = parse_words(&ws, no, &nops[*n]);
	if (!r)
		(*n)++;
	return r;
}

int cli_ops_parse(FILE *in, struct cli_op **ops, size_t *n)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned no = 0;
	int r = 0;

	*ops = NULL;
	*n = 0;
	while (!r && getline(&line, &cap, in) >= 0)
		r = parse_line(line, ++no, ops, n);
	if (!r && ferror(in)) {
		fprintf(stderr, "ckpt: reading the edit list: %s\n",
			strerror(errno));
		r = 1;
	}
	free(line);
	if (r) {
		cli_ops_free(*ops, *n);
		*ops = NULL;
		*n = 0;
	}
	return r;
}

void cli_ops_free(struct cli_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cli_op_free(&ops[i]);
	free(ops);
}
