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
	bool npy;		/* cat --npy */
	const char *format;	/* --format: of FILE, or of convert's OUT */
	struct ckpt_keyopt in;	/* --enc-mode, --keyfile, --keyfd */
	struct ckpt_keyopt out; /* --out-enc-mode, --out-keyfile, ... */
	struct ckpt_key *key, *out_key; /* loaded from in and out, or NULL */
	struct cli_select sel;
	/* diff: --param NAME (malloc'd list of argv pointers), --atol,
	 * --rtol, --equal-nan, --json */
	const char **params;
	size_t nparams;
	double atol, rtol;
	bool equal_nan, json;
};

/* Prints a library failure on stderr with what to do about it, as the
 * command line spells it (ckpt_error_text). */
void cli_report(const struct ckpt_error *err);

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
