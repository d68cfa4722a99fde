/*
 * ckpt_status.h - how 'ckpt umount' talks to a running ckptfs daemon.
 *
 * The mount root answers two extended attributes that are not listed:
 * CKPT_XATTR_PID (the daemon's pid) and CKPT_XATTR_ERROR (the reason the
 * last commit failed, empty if it succeeded).  A commit that fails while the
 * daemon shuts down is reported in a status file named after the daemon's
 * pid, which 'ckpt umount' reads after the daemon has exited.
 */
#ifndef CKPT_STATUS_H
#define CKPT_STATUS_H

#include <stddef.h>
#include <sys/types.h>

#define CKPT_XATTR_PID "user.ckptfs.pid"
#define CKPT_XATTR_ERROR "user.ckptfs.error"

/* Path of the status file of daemon pid, written into buf. */
void ckpt_status_path(pid_t pid, char *buf, size_t size);

/* Writes a one-line message to the status file of pid (best effort). */
void ckpt_status_write(pid_t pid, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reads and removes the status file of pid into buf.  Returns 1 if there
 * was one, 0 if not. */
int ckpt_status_take(pid_t pid, char *buf, size_t size);

#endif /* CKPT_STATUS_H */
