/*
 * cli.h - what the parts of the command-line tool ckpt share.
 *
 *   ckpt_cli.c     main: the options, the dispatch, the usage, the keys
 *   cli_read.c     ls, cat, info, verify: reading a checkpoint
 *   cli_umount.c   umount: commit a mount, unmount it, wait for its daemon
 *   cli_commit.c   commit: commit a mount and stay mounted; the commit
 *                  with progress that umount shares
 *   cli_convert.c  convert: write a checkpoint again, differently encoded
 *
 * Exit status of every command: 0 success, 1 the checkpoint or an
 * operation failed, 2 bad usage.  Single-threaded, except for the fsync
 * of a commit while its progress is shown (cli_commit.c); messages go to
 * stderr as "ckpt: ...", library errors through cli_report, progress
 * through ckpt_progress_* (progress.c).
 */
#ifndef CKPT_CLI_H
#define CKPT_CLI_H

#include <stdbool.h>

#include "ckpt.h"
#include "ckpt_common.h"

/* The options of the command line, shared by the commands. */
struct cli {
	bool lng, quiet, ignore_crc, decrypt, crc, no_crc, force;
	bool skip_unrepresentable;
	const char *format;	/* --format: of FILE, or of convert's OUT */
	struct ckpt_keyopt in;	/* --enc-mode, --keyfile, --keyfd */
	struct ckpt_keyopt out; /* --out-enc-mode, --out-keyfile, ... */
	struct ckpt_key *key, *out_key; /* loaded from in and out, or NULL */
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

/* Commits every edit of the ckptfs mount mnt (ckpt_status_commit: the
 * fsync of its root) and waits until the new checkpoint is durable,
 * showing the commit's progress on stderr unless quiet (see
 * ckpt_progress_start).  The outcome; on failure, why in msg.  Prints
 * nothing else. */
enum ckpt_commit_result cli_commit(const char *mnt, bool quiet, char *msg,
				   size_t size);

#endif /* CKPT_CLI_H */
