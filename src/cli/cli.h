/*
 * cli.h - what the parts of the command-line tool ckpt share.
 *
 *   ckpt_cli.c     main: the options, the dispatch, the usage, the keys
 *   cli_read.c     ls, cat, info, verify: reading a checkpoint
 *   cli_umount.c   umount: commit a mount, unmount it, wait for its daemon
 *   cli_commit.c   commit: commit a mount and stay mounted; the commit
 *                  with progress that umount shares
 *   cli_convert.c  convert: write a checkpoint again, differently encoded
 *   cli_select.c   --include, --exclude, --rename, --name-map: which
 *                  parameters ls, info and convert take, convert's names
 *   cli_diff.c     diff: what differs between two checkpoints
 *   cli_json.c     ls --json, info --json: the listing and the summary
 *                  as JSON documents (their schema: docs/json.md)
 *   cli_edit.c     rm, mv, set, put, edit, get: editing without a mount
 *   cli_editops.c  the edits of those commands, and the edit list
 *
 * Exit status of every command: 0 success, 1 the checkpoint or an
 * operation failed, 2 bad usage; diff: 0 same, 1 different, 2 trouble.  Single-threaded, except for the fsync
 * of a commit while its progress is shown (cli_commit.c); messages go to
 * stderr as "ckpt: ...", library errors through cli_report, progress
 * through ckpt_progress_* (progress.c).
 */
#ifndef CKPT_CLI_H
#define CKPT_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "ckpt.h"
#include "ckpt_common.h"

struct ckpt_tree;
struct cli_renames;

/* The selection and renaming options, in the order given (cli_select.c).
 * The lists are NULL-terminated (NULL while empty) and point into argv. */
struct cli_select {
	const char **include, **exclude; /* --include, --exclude GLOB */
	const char **rename;		 /* --rename s/REGEX/REPL/[g] */
	size_t ninclude, nexclude, nrename;
	const char *name_map;	     /* --name-map FILE.json */
	struct cli_renames *renames; /* compiled by cli_select_prepare */
};

/* Which option of struct cli_select an argument belongs to. */
enum cli_select_opt {
	CLI_SEL_INCLUDE,
	CLI_SEL_EXCLUDE,
	CLI_SEL_RENAME,
	CLI_SEL_NAME_MAP
};

/* The options of the command line, shared by the commands. */
struct cli {
	bool lng, quiet, ignore_crc, decrypt, crc, no_crc, force;
	bool skip_unrepresentable;
	bool no_reflink;	/* --no-reflink: commits never clone FILE */
	bool npy;		/* cat --npy */
	const char *format;	/* --format: of FILE, or of convert's OUT */
	struct ckpt_keyopt in;	/* --enc-mode, --keyfile, --keyfd */
	struct ckpt_keyopt out; /* --out-enc-mode, --out-keyfile, ... */
	struct ckpt_key *key, *out_key; /* loaded from in and out, or NULL */
	struct cli_select sel;
	/* diff: --param NAME (malloc'd list of argv pointers), --atol,
	 * --rtol, --equal-nan; diff, ls and info: --json */
	const char **params;
	size_t nparams;
	double atol, rtol;
	bool equal_nan, json;
	const char *dtype, *shape; /* set, put: --dtype, --shape */
};

/* The len bytes at s (a name or a path) as a JSON string: every byte
 * outside a valid UTF-8 sequence written %XX (names as ls shows them have
 * '%' as %25 already, so percent-decoding gives the stored bytes back);
 * NULL when out of memory (cli_json.c).  A jansson json_t, declared
 * opaquely so that cli.h does not need jansson.h. */
struct json_t;
struct json_t *cli_json_text(const char *s, size_t len);

/* Prints a library failure on stderr with what to do about it, as the
 * command line spells it (ckpt_error_text). */
void cli_report(const struct ckpt_error *err);

/* A ckpt_tree_opts warn callback: "ckpt: warning: MSG" on stderr. */
void cli_warn(void *ctx, const char *msg);

/* cli_read.c, shared with get.  cli_open: opens path with the key, CRC
 * and format options of c; 0, or 1 after a message.  cli_find_tensor:
 * the tensor shown as name (NAME, or NAME/keys|values|status of a map),
 * or NULL.  cli_write_tensor: writes the bytes of t to stdout through
 * buf (cap bytes); 0, or 1 after a message.  cli_write_npy_header: writes
 * the .npy header of t (np.save's, ckpt_npy.h; name for the message) to
 * stdout through buf (at least CKPT_NPY_HEADER_MAX bytes); 0, or 1 after
 * a message. */
int cli_open(const struct cli *c, const char *path, struct ckpt_file **f);
const struct ckpt_tensor *cli_find_tensor(const struct ckpt_file *f,
					  const char *name);
int cli_write_tensor(struct ckpt_file *f, const struct ckpt_tensor *t,
		     char *buf, size_t cap);
int cli_write_npy_header(const struct ckpt_tensor *t, const char *name,
			 char *buf, size_t cap);

/* The commands: argc and argv are the arguments after the options.  Each
 * returns its exit status, or -1 if the arguments are wrong (the caller
 * then prints the usage; exit status 2). */
int cmd_ls(struct cli *c, int argc, char **argv);      /* cli_read.c */
int cmd_cat(struct cli *c, int argc, char **argv);     /* cli_read.c */
int cmd_info(struct cli *c, int argc, char **argv);    /* cli_read.c */
int cmd_verify(struct cli *c, int argc, char **argv);  /* cli_read.c */
int cmd_umount(struct cli *c, int argc, char **argv);  /* cli_umount.c */
int cmd_commit(struct cli *c, int argc, char **argv);  /* cli_commit.c */
int cmd_convert(struct cli *c, int argc, char **argv); /* cli_convert.c */
int cmd_diff(struct cli *c, int argc, char **argv);    /* cli_diff.c */
int cmd_rm(struct cli *c, int argc, char **argv);      /* cli_edit.c */
int cmd_mv(struct cli *c, int argc, char **argv);      /* cli_edit.c */
int cmd_set(struct cli *c, int argc, char **argv);     /* cli_edit.c */
int cmd_put(struct cli *c, int argc, char **argv);     /* cli_edit.c */
int cmd_edit(struct cli *c, int argc, char **argv);    /* cli_edit.c */
int cmd_get(struct cli *c, int argc, char **argv);     /* cli_edit.c */

/* ---- cli_editops.c: the edits of rm, mv, set, put and edit --------------
 * One edit, its names in the shown spelling (cli_shown_name), every
 * string malloc'd; line is its line in an edit list (0: the command
 * line), which messages name. */
enum cli_op_verb {
	CLI_OP_RM,
	CLI_OP_MV,
	CLI_OP_SET,
	CLI_OP_PUT
};

struct cli_op {
	enum cli_op_verb verb;
	char *name;	     /* the parameter (mv: OLD) */
	char *to;	     /* mv: NEW */
	char *dtype, *shape; /* set, put: NULL leaves it */
	char *path;	     /* put: the file of the bytes; NULL: stdin */
	bool npy;	     /* put: the bytes are a .npy file, whose header
			      * gives the dtype and shape */
	unsigned line;
};

/* The shown spelling (as ckpt ls prints it) of a name as typed: each
 * '/'-separated part decoded (ckpt_name_decode: any %XX) and escaped
 * again, so "a%20b" and "a b" are the same name.  0 with a malloc'd
 * *shown, or 2 after a message. */
int cli_shown_name(const char *typed, char **shown);

/* Fills op (NULL to, dtype, shape: none) with copies; 0, or the exit
 * status after a message (op is then empty). */
int cli_op_make(struct cli_op *op, enum cli_op_verb verb, const char *name,
		const char *to, const char *dtype, const char *shape,
		unsigned line);

/* Frees what op holds and empties it. */
void cli_op_free(struct cli_op *op);

/* Applies op to t (file names t in messages; force: mv replaces an
 * existing NEW); 0, or 1 after a message.  Never commits. */
int cli_op_apply(struct ckpt_tree *t, const struct cli_op *op, bool force,
		 const char *file);

/* Reads an edit list (see "Editing" in man/ckpt.1) from in into a
 * malloc'd array *ops of *n operations; 0, or the exit status after a
 * message naming the line (2 for a malformed line). */
int cli_ops_parse(FILE *in, struct cli_op **ops, size_t *n);

/* Frees ops[0..n) and the array. */
void cli_ops_free(struct cli_op *ops, size_t n);

/* The parameters of a file at a glance, as info counts those the
 * selection keeps (cli_read.c): by dtype (plain tensors), maps, sliced
 * ones (stored in several records), all of them, their data bytes. */
struct cli_counts {
	uint64_t dtype[CKPT_DT_COUNT];
	uint64_t maps, sliced, selected, data;
};

/* cli_json.c, for ls --json and info --json on the open file f: writes
 * the document (docs/json.md) on stdout and returns the exit status, 0,
 * or 1 after a message (out of memory, a failed write: the document is
 * then incomplete).  cli_json_ls lists the parameters c->sel keeps;
 * cli_json_info gets their counts n. */
int cli_json_ls(const struct cli *c, const struct ckpt_file *f);
int cli_json_info(const struct cli *c, const struct ckpt_file *f,
		  const struct cli_counts *n);

/* cli_select.c.  cli_select_add: records arg for option which; 0, or the
 * exit status after a message.  cli_select_check: 0 if the options fit
 * command cmd (ls, info and convert select; only convert renames), else
 * 2 after a message.  cli_select_keep: whether ls and info show the
 * parameter stored as name (ckpt_select_keep).  cli_select_prepare
 * (convert, before opening IN): compiles the renames and reads the name
 * map; 0, or 2 after a message.  cli_select_apply (convert, on the open
 * one-shot tree): drops the parameters not selected and renames the
 * others; 0, or 1 after a message.  cli_select_free: frees what the
 * others allocated (also after a failure). */
int cli_select_add(struct cli_select *s, enum cli_select_opt which,
		   const char *arg);
int cli_select_check(const struct cli_select *s, const char *cmd);
bool cli_select_keep(const struct cli_select *s, const char *name);
int cli_select_prepare(struct cli_select *s);
int cli_select_apply(const struct cli_select *s, struct ckpt_tree *t);
void cli_select_free(struct cli_select *s);

/* Commits every edit of the ckptfs mount mnt (ckpt_status_commit: the
 * fsync of its root) and waits until the new checkpoint is durable,
 * showing the commit's progress on stderr unless quiet (see
 * ckpt_progress_start).  The outcome; on failure, why in msg.  Prints
 * nothing else. */
enum ckpt_commit_result cli_commit(const char *mnt, bool quiet, char *msg,
				   size_t size);

#endif /* CKPT_CLI_H */
