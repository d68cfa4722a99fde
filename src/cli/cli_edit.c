/*
 * cli_edit.c - editing a checkpoint without a mount: ckpt rm, mv, set,
 * put, edit, and get, its reading counterpart (see cli.h).
 *
 *   rm FILE NAME...                 remove parameters
 *   mv [--force] FILE OLD NEW       rename one
 *   set FILE NAME [--dtype T] [--shape S]
 *   put FILE NAME [--dtype T] [--shape S | --npy] < DATA
 *   edit [--force] FILE < LIST      the edits of LIST (cli_ops_parse)
 *   get [--npy] FILE NAME           the raw bytes of one parameter
 *
 * Owns the mapping of the command lines onto operations (cli_editops.c
 * applies them) and the one tree each invocation edits: opened with the
 * key of FILE (the commit keeps it), the crc policy of --crc / --no-crc
 * (default: keep), no scratch names, and the writer lock, so a mounted
 * checkpoint is refused.  Every operation is applied in order; the first
 * failure closes the tree without a commit, so FILE is untouched; else one
 * commit writes them all (the library's atomic replace).  get reads with
 * ckpt_open, as cat does, and takes no lock.  Single-threaded but for the
 * library's encryption workers.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_tree.h"
#include "cli.h"

/* Says what the open tree t of file wants the user to know. */
static void note_source(const char *file, struct ckpt_tree *t)
{
	char warning[PATH_MAX + 128];

	if (ckpt_keyopt_legacy_warning(ckpt_tree_source_stats(t), file,
				       CKPT_FRONT_CLI, warning,
				       sizeof(warning)))
		fprintf(stderr, "ckpt: %s\n", warning);
	if (ckpt_tree_warning(t))
		fprintf(stderr, "ckpt: warning: %s\n", ckpt_tree_warning(t));
}

/* Opens file as the tree the options of c say into *t; 1 after a
 * message. */
static int open_tree(struct cli *c, const char *file, struct ckpt_progress *p,
		     struct ckpt_tree **t)
{
	struct ckpt_tree_opts to = {.scratch =
					    "", /* every name given is meant */
				    .crc = c->no_crc ? CKPT_CRC_DROP
					   : c->crc  ? CKPT_CRC_ADD
						     : CKPT_CRC_KEEP,
				    .one_shot = true,
				    .no_reflink = c->no_reflink,
				    .open = {.key = c->key,
					     .skip_crc = c->ignore_crc,
					     .format = c->format},
				    .out_key_policy = CKPT_OUT_KEY_SAME,
				    .out_format = c->format,
				    .warn = cli_warn};
	struct ckpt_error err;

	if (p->on) {
		to.progress = ckpt_progress_cb;
		to.progress_ctx = p;
	}
	if (ckpt_tree_open(file, &to, t, &err)) {
		cli_report(&err);
		return 1;
	}
	note_source(file, *t);
	if (ckpt_tree_read_only(*t)) {
		fprintf(stderr, "ckpt: cannot edit %s: %s\n", file,
			ckpt_tree_read_only(*t));
		ckpt_tree_close(*t);
		return 1;
	}
	return 0;
}

/* Applies ops[0..n) to file in one commit, or none; the exit status. */
static int run_ops(struct cli *c, const char *file, const struct cli_op *ops,
		   size_t n)
{
	struct ckpt_progress p;
	struct ckpt_tree *t;
	struct ckpt_error err;
	bool failed;
	int r = 0;

	if (c->crc && c->no_crc) {
		fprintf(stderr,
			"ckpt: --crc and --no-crc exclude each other\n");
		return 2;
	}
	ckpt_progress_start(&p, c->quiet);
	if (open_tree(c, file, &p, &t))
		return 1;
	for (size_t i = 0; !r && i < n; i++)
		r = cli_op_apply(t, &ops[i], c->force, file);
	failed = !r && ckpt_tree_commit(t, &err) != CKPT_OK;
	ckpt_progress_end(&p);
	if (failed) {
		cli_report(&err);
		r = 1;
	}
	if (r)
		fprintf(stderr,
			"ckpt: nothing was committed: %s is as it was\n", file);
	ckpt_tree_close(t);
	return r;
}

/* Runs the n operations made by cli_op_make and frees them; the exit
 * status (r if one could not be made). */
static int run_made(struct cli *c, const char *file, struct cli_op *ops,
		    size_t n, int r)
{
	if (!r)
		r = run_ops(c, file, ops, n);
	for (size_t i = 0; i < n; i++)
		cli_op_free(&ops[i]);
	return r;
}

/* rm FILE NAME...: every NAME removed, or none. */
int cmd_rm(struct cli *c, int argc, char **argv)
{
	struct cli_op *ops;
	int r = 0, n = 0;

	if (argc < 2)
		return -1;
	ops = calloc((size_t)argc - 1, sizeof(*ops));
	if (!ops) {
		fprintf(stderr, "ckpt: out of memory\n");
		return 1;
	}
	while (!r && n < argc - 1) {
		r = cli_op_make(&ops[n], CLI_OP_RM, argv[n + 1], NULL, NULL,
				NULL, 0);
		n += !r;
	}
	r = run_made(c, argv[0], ops, (size_t)n, r);
	free(ops);
	return r;
}

/* mv FILE OLD NEW: renamed in place; an existing NEW only with --force. */
int cmd_mv(struct cli *c, int argc, char **argv)
{
	struct cli_op op;
	int r;

	if (argc != 3)
		return -1;
	r = cli_op_make(&op, CLI_OP_MV, argv[1], argv[2], NULL, NULL, 0);
	return run_made(c, argv[0], &op, r ? 0 : 1, r);
}

/* set FILE NAME: --dtype and/or --shape, as setfattr on the mount. */
int cmd_set(struct cli *c, int argc, char **argv)
{
	struct cli_op op;
	int r;

	if (argc != 2)
		return -1;
	if (!c->dtype && !c->shape) {
		fprintf(stderr, "ckpt: set needs --dtype T, --shape S or "
				"both\n");
		return 2;
	}
	r = cli_op_make(&op, CLI_OP_SET, argv[1], NULL, c->dtype, c->shape, 0);
	return run_made(c, argv[0], &op, r ? 0 : 1, r);
}

/* put FILE NAME < DATA: created or replaced with the bytes of stdin (with
 * --npy: a .npy file, whose header gives the dtype and shape). */
int cmd_put(struct cli *c, int argc, char **argv)
{
	struct cli_op op;
	int r;

	if (argc != 2)
		return -1;
	r = cli_op_make(&op, CLI_OP_PUT, argv[1], NULL, c->dtype, c->shape, 0);
	op.npy = c->npy;
	return run_made(c, argv[0], &op, r ? 0 : 1, r);
}

/* edit FILE < LIST: every operation of LIST in one commit, or none. */
int cmd_edit(struct cli *c, int argc, char **argv)
{
	struct cli_op *ops;
	size_t n;
	int r;

	if (argc != 1)
		return -1;
	r = cli_ops_parse(stdin, &ops, &n);
	if (r) {
		fprintf(stderr,
			"ckpt: nothing was committed: %s is as it was\n",
			argv[0]);
		return r;
	}
	r = run_ops(c, argv[0], ops, n);
	cli_ops_free(ops, n);
	return r;
}

/* get FILE NAME: the raw bytes of one parameter (or map tensor); with
 * --npy after its .npy header. */
int cmd_get(struct cli *c, int argc, char **argv)
{
	enum {
		GET_CHUNK = 1 << 20
	};
	const struct ckpt_tensor *t;
	struct ckpt_file *f;
	char *name = NULL, *buf = NULL;
	int r;

	if (argc != 2)
		return -1;
	r = cli_shown_name(argv[1], &name);
	if (r)
		return r;
	r = 1;
	if (cli_open(c, argv[0], &f))
		goto out;
	t = cli_find_tensor(f, name);
	buf = malloc(GET_CHUNK);
	if (!t)
		fprintf(stderr,
			"ckpt: %s: no parameter named '%s' (see 'ckpt ls "
			"%s')\n",
			argv[0], argv[1], argv[0]);
	else if (!buf)
		fprintf(stderr, "ckpt: out of memory\n");
	else if (!(c->npy &&
		   cli_write_npy_header(t, argv[1], buf, GET_CHUNK)) &&
		 !cli_write_tensor(f, t, buf, GET_CHUNK))
		r = fflush(stdout) ? 1 : 0;
	ckpt_close(f);
out:
	free(buf);
	free(name);
	return r;
}
