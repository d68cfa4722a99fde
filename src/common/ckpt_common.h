/*
 * ckpt_common.h - what both front ends (ckptfs and ckpt) share, and
 * nothing the library needs: the 'ckpt umount' protocol (status.c, the
 * daemon's side; status_client.c, the client's), the remedies they suggest
 * after a library failure (hint.c), the key options (keyopt.c), ckpt's
 * progress display (progress.c) and what --version prints (version.c).
 */
#ifndef CKPT_COMMON_H
#define CKPT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ckpt.h"

/* ---- --version (version.c) ----------------------------------------------
 * Prints "PROGRAM VERSION" and the libraries in use on stdout: libfuse's
 * version string (NULL: the program does not link it), the crypto library
 * and protobuf-c (which no program links), and flushes it. */
void ckpt_print_version(const char *program, const char *libfuse);

/* ---- the 'ckpt umount' protocol ---------------------------------------
 * How 'ckpt umount' and 'ckpt commit' talk to a running ckptfs daemon.
 *
 * The mount root answers extended attributes that are not listed:
 *
 *   CKPT_XATTR_PID      the daemon's pid
 *   CKPT_XATTR_ERROR    why the last commit failed ("" if it succeeded)
 *   CKPT_XATTR_CHANGED  "1" if it failed because the checkpoint was
 *                       replaced or modified underneath (unmounting then
 *                       saves a recovery file), else "0"
 *   CKPT_XATTR_STATUS   the path of the daemon's status socket
 *   CKPT_XATTR_PROGRESS "DONE TOTAL": decimal plaintext bytes written and
 *                       expected by the commit in progress, "0 0" when
 *                       none runs (answered while a commit runs)
 *   CKPT_XATTR_FORCE    (set only) the next commit replaces whatever file
 *                       the path holds now
 *
 * All but CKPT_XATTR_FORCE are read-only (setxattr: EPERM).
 *
 * The status socket is a unix stream socket named PID.sock in a runtime
 * directory of the daemon's user that only that user can enter (mode 0700:
 * $XDG_RUNTIME_DIR/ckptfs, /run/ckptfs for root, else /tmp/ckptfs-UID).
 * A client connects before it unmounts; once the daemon has run its last
 * commit it writes one line to every client, "OK" or what went wrong
 * (with the recovery file's path), closes the connections and removes the
 * socket.  The client checks with SO_PEERCRED that the socket is served
 * by the daemon's pid and uid, so nobody can plant or spoof the answer.
 */

#define CKPT_XATTR_PID "user.ckptfs.pid"
#define CKPT_XATTR_ERROR "user.ckptfs.error"
#define CKPT_XATTR_CHANGED "user.ckptfs.changed"
#define CKPT_XATTR_STATUS "user.ckptfs.status"
#define CKPT_XATTR_FORCE "user.ckptfs.force"
#define CKPT_XATTR_PROGRESS "user.ckptfs.progress"

/* The line a daemon sends when its last commit succeeded (or there was
 * nothing to commit). */
#define CKPT_STATUS_OK "OK"

/* ---- daemon side (status.c) -------------------------------------------- */

struct ckpt_status_server;

/* Before mounting: finds or creates the runtime directory (see the top),
 * refuses one that is not a directory owned by us with mode 0700 (a
 * message in msg), opens it and removes the sockets of daemons that are
 * gone.  0, or -1 with msg. */
int ckpt_status_prepare(struct ckpt_status_server **out, char *msg,
			size_t size);

/* In the final process (after fuse_daemonize): binds PID.sock, listens,
 * and starts the thread that accepts clients.  0, or -1 with msg (the
 * server then has no socket; ckpt_status_finish still frees it). */
int ckpt_status_start(struct ckpt_status_server *s, char *msg, size_t size);

/* The socket's path, or NULL if it was not started. */
const char *ckpt_status_path(const struct ckpt_status_server *s);

/* At the end: sends line (one line: CKPT_STATUS_OK or the message) to
 * every client, including those still waiting to be accepted, closes
 * them, removes the socket and frees s.  NULL s: nothing. */
void ckpt_status_finish(struct ckpt_status_server *s, const char *line);

/* ---- client side (status_client.c) ------------------------------------- */

/* What serves the mount point mnt. */
enum ckpt_mount_state {
	CKPT_MOUNT_SERVED,  /* a running ckptfs daemon */
	CKPT_MOUNT_STALE,   /* a ckptfs mount whose daemon is gone (ENOTCONN:
			     * it crashed or was killed) */
	CKPT_MOUNT_FOREIGN, /* not a ckptfs mount point */
};

/* Asks the root of mnt for its daemon's pid: CKPT_MOUNT_SERVED with *pid
 * set, else *pid = 0. */
enum ckpt_mount_state ckpt_status_daemon(const char *mnt, pid_t *pid);

/* What ckpt_status_open returns when it has no descriptor. */
enum {
	CKPT_STATUS_UNREACHABLE = -1, /* the socket cannot be reached */
	CKPT_STATUS_UNTRUSTED = -2,   /* something else serves it */
	CKPT_STATUS_NO_SOCKET = -3,   /* the daemon has no status socket */
};

/* Connects to the status socket of mnt's daemon pid (its path from
 * CKPT_XATTR_STATUS) and checks that its peer is that process running as
 * the user who owns the mount (/proc/self/mountinfo).  Returns the
 * connected descriptor, CKPT_STATUS_NO_SOCKET, or CKPT_STATUS_UNREACHABLE
 * or _UNTRUSTED with a message in msg. */
int ckpt_status_open(const char *mnt, pid_t pid, char *msg, size_t size);

/* Sets CKPT_XATTR_FORCE on mnt's root: its next commit replaces whatever
 * file the path holds now.  0, or -1 with errno. */
int ckpt_status_force(const char *mnt);

/* How a commit by fsync of a mount's root ended. */
enum ckpt_commit_result {
	CKPT_COMMIT_DONE,    /* every edit is in the checkpoint */
	CKPT_COMMIT_FAILED,  /* nothing was written; the edits stay mounted */
	CKPT_COMMIT_CHANGED, /* the checkpoint was replaced or modified
			      * underneath: unmounting saves the edits as a
			      * recovery file */
};

/* Commits every edit of mnt by an fsync of its root.  On failure msg gets
 * why: the daemon's CKPT_XATTR_ERROR, or the errno text of the fsync if
 * the daemon tried no commit (EACCES) or tells nothing. */
enum ckpt_commit_result ckpt_status_commit(const char *mnt, char *msg,
					   size_t size);

/* Reads CKPT_XATTR_PROGRESS of mnt: the commit in progress has written
 * *done of *total plaintext bytes (0 0: none runs).  0, or -1 if the
 * mount does not answer it (errno; EINVAL if the value is malformed). */
int ckpt_status_progress(const char *mnt, uint64_t *done, uint64_t *total);

/* Reads the daemon's line from fd (blocks until the daemon sends it or
 * closes).  1 with the line, without its newline, in buf; 0 if the
 * connection ended without a line (the daemon died). */
int ckpt_status_read(int fd, char *buf, size_t size);

/* ---- remedies (hint.c) -------------------------------------------------
 * What both front ends suggest after a library failure, each in its own
 * spelling.  The library says what is wrong and sets err->hint; what to type about
 * it depends on the program: "-o ro" for ckptfs, "--enc-mode" for ckpt.
 */

enum ckpt_front {
	CKPT_FRONT_MOUNT, /* ckptfs and its -o options */
	CKPT_FRONT_CLI,	  /* ckpt and its --options */
};

/* err->msg followed by the remedy for err->hint as front spells it,
 * written into buf (size bytes, cut if need be); returns buf. */
const char *ckpt_error_text(const struct ckpt_error *err, enum ckpt_front front,
			    char *buf, size_t size);

/* ---- key options (keyopt.c) --------------------------------------------
 * An encryption mode with a key file or an inherited descriptor, as ckptfs
 * spells them (-o enc_mode=, keyfile=, keyfd=) and ckpt does (--enc-mode,
 * --keyfile, --keyfd), and the warning both give about a checkpoint in
 * the unauthenticated legacy encryption layout.
 */

/* The key options as given; NULL and -1 where absent. */
struct ckpt_keyopt {
	const char *mode;    /* "AES-GCM", "AES-CBC", "SM4-CBC" */
	const char *keyfile; /* a path; "-" is standard input */
	int keyfd;	     /* an inherited descriptor */
};

enum ckpt_keyopt_result {
	CKPT_KEYOPT_OK,	    /* *out is the key, or NULL if none was given */
	CKPT_KEYOPT_FAILED, /* the key could not be read (a message) */
	CKPT_KEYOPT_USAGE,  /* the options do not make a key (a message) */
};

/* Loads the key o names into *out (NULL if o names none) with
 * ckpt_key_load.  On failure writes the message, as front spells it, into
 * msg (size bytes) and says whether the options themselves are wrong (an
 * incomplete set, or both a file and a descriptor) or the key could not
 * be read. */
enum ckpt_keyopt_result ckpt_keyopt_load(const struct ckpt_keyopt *o,
					 enum ckpt_front front,
					 struct ckpt_key **out, char *msg,
					 size_t size);

/* If st (NULL: no file) describes a checkpoint in the MindSpore 1.3-1.6
 * encryption layout, which nothing authenticates: true, with the warning
 * for path as front words it in buf (size bytes).  Else false. */
bool ckpt_keyopt_legacy_warning(const struct ckpt_stats *st, const char *path,
				enum ckpt_front front, char *buf, size_t size);

/* ---- progress (progress.c) ---------------------------------------------
 * The progress line of ckpt's long operations (convert, commit, umount)
 * on stderr: "DONE of TOTAL (P%), RATE/s, T left".  Shown when stderr is
 * a terminal (one line, rewritten in place at most 5 times a second) or
 * when CKPT_PROGRESS=1 is set (then, if stderr is no terminal, one line
 * per update, at most one a second); never with -q.  The first update and
 * the one reaching TOTAL are always shown.  Not thread-safe: one thread
 * at a time (the library's progress calls are serialized).
 */

struct ckpt_progress {
	bool on;	     /* anything is shown at all */
	bool tty;	     /* lines are rewritten in place with '\r' */
	bool shown;	     /* a line was printed */
	bool final_shown;    /* ... and it reached its total */
	int width;	     /* tty: the length of the line on screen */
	uint64_t start_ns;   /* CLOCK_MONOTONIC at the first line ... */
	uint64_t start_done; /* ... and its done: the rate counts from there */
	uint64_t shown_ns;   /* when a line was last printed */
};

/* Starts a display in p: on unless quiet, when stderr is a terminal or
 * CKPT_PROGRESS=1 is set. */
void ckpt_progress_start(struct ckpt_progress *p, bool quiet);

/* Shows that done of total bytes are written, unless p is off or the last
 * line is too recent (the first one and the one with done >= total are
 * always shown, the latter once). */
void ckpt_progress_update(struct ckpt_progress *p, uint64_t done,
			  uint64_t total);

/* ckpt_progress_update as a library progress callback (ctx is p). */
void ckpt_progress_cb(void *ctx, uint64_t done, uint64_t total);

/* Ends the display: a line left on a terminal gets its newline, so that
 * what is printed next starts on a line of its own.  Nothing if nothing
 * was shown. */
void ckpt_progress_end(struct ckpt_progress *p);

/* The text of a progress line for done of total bytes at rate bytes a
 * second (0: not known yet) into buf (size > 0, cut if need be; no
 * newline): "DONE of TOTAL (P%)", then ", RATE/s" if the rate is known,
 * then ", M:SS left" (H:MM:SS from an hour) while done < total.  Sizes
 * are in B, KiB, MiB, GiB, ... with one decimal.  Returns its length. */
size_t ckpt_progress_format(char *buf, size_t size, uint64_t done,
			    uint64_t total, double rate);

#endif /* CKPT_COMMON_H */
