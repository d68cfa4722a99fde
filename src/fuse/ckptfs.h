/*
 * ckptfs.h - what the parts of the ckptfs daemon share.
 *
 *   ckptfs.c  command line, start-up, signals, the session, exit status
 *   ops.c     the FUSE requests mapped onto the tree (libckpt)
 *   fslog.c   messages: stderr, syslog, -o log=PATH
 */
#ifndef CKPTFS_H
#define CKPTFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ckpt_hint.h"
#include "ckpt_status.h"
#include "ckpt_tree.h"

#define ERR_MSG_MAX sizeof(((struct ckpt_error *)0)->msg)

struct ckptfs {
	struct ckpt_tree *tree;
	const char *mountpoint;   /* absolute (libfuse resolves it) */
	uint64_t mount_ns;        /* mtime of the root directory */
	unsigned max_read;        /* -o max_read=N, 0 if not given */
	bool direct_writes;       /* the kernel invalidates pages on direct
				   * writes */
	struct ckpt_status_server *status; /* NULL: no status channel */
	pthread_mutex_t lock;     /* the fields below */
	char last_error[ERR_MSG_MAX + 512]; /* of the last commit, "" if ok */
	bool changed;             /* it failed: the checkpoint changed */
	char source_msg[ERR_MSG_MAX]; /* the last source problem logged */
	/* Set by the unmount commit (op_destroy) when it failed: the
	 * malloc'd message for 'ckpt umount' (NULL if out of memory). */
	bool final_failed;
	char *final_error;
};

/* The FUSE operations (ops.c); userdata is the struct ckptfs. */
extern const struct fuse_lowlevel_ops ckptfs_ops;

/* ---- messages (fslog.c) ------------------------------------------------ */

#define LOG_LINE_MAX 4096

/* Opens the -o log= file (append, create 0600, no symbolic link, regular
 * files only).  0, or -1 after a message on stderr. */
int log_open_file(const char *path);

/* After fuse_daemonize: stderr keeps getting messages only with -f. */
void log_detach(bool foreground);

/* Closes the log file. */
void log_close(void);

/* A message of the running daemon (syslog priority prio): to stderr while
 * attached, to syslog, to the log file. */
void logmsg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A start-up message for the user who mounts: stderr and the log file. */
void say(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* CKPTFS_H */
