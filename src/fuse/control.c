/*
 * control.c - commits and the server side of 'ckpt umount' (see
 * ckptfs.h and ckpt_common.h).
 *
 * Owns:
 *   - who may commit: a descriptor opened for writing, root, or the write
 *     bit of the caller's class (owner, group, other) on the mode the
 *     files show; refusals are logged;
 *   - the commit by fsync of any file or directory (except a scratch
 *     file, which commits nothing) and what it leaves for 'ckpt umount':
 *     the last error (user.ckptfs.error) and whether the checkpoint
 *     changed underneath (user.ckptfs.changed); forcing the next commit
 *     (user.ckptfs.force); the progress of the commit that runs
 *     (user.ckptfs.progress);
 *   - the commit at unmount (op_destroy): if it fails, the tree is saved
 *     as a recovery checkpoint beside the original instead of being
 *     lost, and the outcome goes to the status clients through
 *     fs->final_failed and fs->final_error.
 *
 * Remedies: a failed fsync commit is worded with ckpt_error_text, except
 * when the checkpoint changed underneath: then this file writes the
 * remedy itself, naming the mount point.  At unmount the library's
 * message is used as it is: the recovery file is the remedy.
 *
 * Locking: fs->lock around last_error, changed and source_msg only,
 * never across a call into the tree or a log message.  The progress is
 * atomics only: the tree calls ctl_progress with its write lock held,
 * and user.ckptfs.progress is read without the tree, so it is answered
 * while a commit runs.  final_* are written by op_destroy alone, after
 * the last request.  Never replies to a request it was not given
 * (ctl_force returns the errno instead).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "ckptfs.h"

/* ---- who may commit ---------------------------------------------------- */

/* True if gid is the caller's primary group or one of its supplementary
 * groups. */
static bool caller_in_group(fuse_req_t req, gid_t primary, gid_t gid)
{
	gid_t small[64], *list = small;
	int n, cap = 64;
	bool found = primary == gid;

	n = fuse_req_getgroups(req, cap, list);
	if (n > cap) {
		list = malloc((size_t)n * sizeof(*list));
		cap = n;
		n = list ? fuse_req_getgroups(req, cap, list) : -ENOMEM;
	}
	for (int i = 0; i < n && i < cap && !found; i++)
		found = list[i] == gid;
	if (list != small)
		free(list);
	return found;
}

/* True if the caller of req may write the checkpoint: root, or the write
 * bit of its class (owner, group, other) on the mode the files show. */
static bool caller_may_write(fuse_req_t req, struct ckptfs *fs)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct shown s;

	if (c->uid == 0)
		return true;
	get_shown(fs, &s);
	if (c->uid == s.uid)
		return s.file & S_IWUSR;
	if (caller_in_group(req, c->gid, s.gid))
		return s.file & S_IWGRP;
	return s.file & S_IWOTH;
}

/* True if req may commit (fi: its open file, NULL if none); else logs
 * the refusal of what (a verb). */
static bool may_commit(fuse_req_t req, const struct fuse_file_info *fi,
		       const char *what)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	if ((fi && (fi->fh & FH_WRITABLE)) || caller_may_write(req, fs_of(req)))
		return true;
	logmsg(LOG_NOTICE,
	       "%s by uid %u (pid %d) refused: it may not write "
	       "the checkpoint %s",
	       what, (unsigned)c->uid, (int)c->pid,
	       ckpt_tree_target(fs_of(req)->tree));
	return false;
}

/* ---- commits by fsync -------------------------------------------------- */

/* Remembers the outcome of a commit for user.ckptfs.error and
 * user.ckptfs.changed (err NULL: success) and logs a failure; when the
 * checkpoint changed underneath, the message says what to do. */
static void note_commit(struct ckptfs *fs, const struct ckpt_error *err)
{
	char msg[sizeof(fs->last_error)] = "";

	if (err && err->code == CKPT_ERR_CHANGED)
		snprintf(
			msg, sizeof(msg),
			"%s; every edit is still in the "
			"mount: unmount it ('ckpt umount %s') to save them as "
			"a recovery file beside the checkpoint, or replace the "
			"file the path holds now with 'ckpt umount --force %s'",
			err->msg, fs->mountpoint, fs->mountpoint);
	else if (err)
		ckpt_error_text(err, CKPT_FRONT_MOUNT, msg, sizeof(msg));
	pthread_mutex_lock(&fs->lock);
	memcpy(fs->last_error, msg, sizeof(msg));
	fs->changed = err && err->code == CKPT_ERR_CHANGED;
	if (!err)
		fs->source_msg[0] = '\0'; /* a new file: problems logged anew */
	pthread_mutex_unlock(&fs->lock);
	if (err)
		logmsg(LOG_ERR, "commit failed: %s", msg);
}

/* ---- progress ---------------------------------------------------------- */

void ctl_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct ckptfs *fs = ctx;

	atomic_store(&fs->progress_total, total);
	atomic_store(&fs->progress_done, done);
}

/* ckpt_tree_commit, and "0 0" in user.ckptfs.progress once no other
 * commit runs. */
static ckpt_err run_commit(struct ckptfs *fs, struct ckpt_error *err)
{
	ckpt_err r;

	atomic_fetch_add(&fs->commits, 1);
	r = ckpt_tree_commit(fs->tree, err);
	if (atomic_fetch_sub(&fs->commits, 1) == 1) {
		atomic_store(&fs->progress_total, 0);
		atomic_store(&fs->progress_done, 0);
	}
	return r;
}

/* "DONE TOTAL" of the commit that runs into buf; done never above total,
 * both of the same commit unless two follow each other at once. */
static void progress_value(struct ckptfs *fs, char *buf, size_t size)
{
	uint64_t done, total, again = atomic_load(&fs->progress_total);

	for (int tries = 0; tries < 8; tries++) {
		total = again;
		done = atomic_load(&fs->progress_done);
		again = atomic_load(&fs->progress_total);
		if (again == total)
			break;
	}
	total = again;
	snprintf(buf, size, "%llu %llu",
		 (unsigned long long)(done < total ? done : total),
		 (unsigned long long)total);
}

/* fsync of anything commits everything (see op_fsync in ckptfs.h). */
static void commit(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;

	if (ckpt_tree_read_only(fs->tree) ||
	    ckpt_tree_is_scratch(fs->tree, ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (!may_commit(req, fi, "fsync")) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (run_commit(fs, &err) == CKPT_OK) {
		note_commit(fs, NULL);
		fuse_reply_err(req, 0);
		ckpt_tree_drop_replaced(fs->tree); /* after the answer */
	} else {
		note_commit(fs, &err);
		reply_fail(req, &err);
	}
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi)
{
	(void)datasync;
	commit(req, ino, fi);
}

/* A directory's handle says nothing about writing (with -o tree it is a
 * listing, treefs.c): only who asks counts. */
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	commit(req, ino, NULL);
}

/* ---- what 'ckpt umount' asks ------------------------------------------- */

bool ctl_value(struct ckptfs *fs, const char *name, char *buf, size_t size)
{
	const char *path = ckpt_status_path(fs->status);
	bool known = true;

	if (strcmp(name, CKPT_XATTR_PROGRESS) == 0) {
		progress_value(fs, buf, size);
		return true;
	}
	pthread_mutex_lock(&fs->lock);
	if (strcmp(name, CKPT_XATTR_PID) == 0)
		snprintf(buf, size, "%d", (int)getpid());
	else if (strcmp(name, CKPT_XATTR_STATUS) == 0 && path)
		snprintf(buf, size, "%s", path);
	else if (strcmp(name, CKPT_XATTR_ERROR) == 0)
		snprintf(buf, size, "%s", fs->last_error);
	else if (strcmp(name, CKPT_XATTR_CHANGED) == 0)
		snprintf(buf, size, "%d", fs->changed);
	else
		known = false;
	pthread_mutex_unlock(&fs->lock);
	return known;
}

int ctl_force(fuse_req_t req)
{
	struct ckptfs *fs = fs_of(req);

	if (ckpt_tree_read_only(fs->tree))
		return EROFS;
	if (!may_commit(req, NULL, "forcing the next commit"))
		return EACCES;
	ckpt_tree_force(fs->tree);
	logmsg(LOG_NOTICE,
	       "forced: the next commit replaces whatever file %s "
	       "holds now",
	       ckpt_tree_target(fs->tree));
	return 0;
}

/* ---- the unmount commit ------------------------------------------------ */

/* Records that the commit at unmount failed, with the message fmt... for
 * the status clients, in fs->final_failed and fs->final_error. */
static void final_failure(struct ckptfs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void final_failure(struct ckptfs *fs, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(fs->final_error);
	fs->final_error = msg;
	fs->final_failed = true;
}

/* The commit at unmount failed with err: saves the pending tree as a
 * recovery checkpoint, so that nothing is lost, and records and logs
 * where it went (or that it could not be saved). */
static void save_recovery(struct ckptfs *fs, const struct ckpt_error *err)
{
	struct ckpt_error rerr;
	char *saved, *lost;
	const char *sep;

	if (ckpt_tree_save_recovery(fs->tree, &saved, &lost, &rerr) !=
	    CKPT_OK) {
		logmsg(LOG_CRIT, "could not save pending changes: %s",
		       rerr.msg);
		final_failure(fs,
			      "commit at unmount failed (%s) and the "
			      "changes could not be saved: %s",
			      err->msg, rerr.msg);
		return;
	}
	sep = lost ? "; these could not be saved: " : "";
	logmsg(LOG_ERR, "pending changes saved to %s%s%s", saved, sep,
	       lost ? lost : "");
	final_failure(fs,
		      "commit at unmount failed (%s); pending changes "
		      "saved to %s%s%s",
		      err->msg, saved, sep, lost ? lost : "");
	free(saved);
	free(lost);
}

void op_destroy(void *userdata)
{
	struct ckptfs *fs = userdata;
	struct ckpt_error err;

	if (ckpt_tree_read_only(fs->tree) || !ckpt_tree_dirty(fs->tree))
		return;
	if (run_commit(fs, &err) == CKPT_OK) {
		logmsg(LOG_INFO, "committed %s at unmount",
		       ckpt_tree_target(fs->tree));
		return;
	}
	logmsg(LOG_ERR, "commit at unmount failed: %s", err.msg);
	if (!ckpt_tree_dirty(fs->tree)) /* in place, directory unsynced */
		final_failure(fs, "commit at unmount: %s", err.msg);
	else
		save_recovery(fs, &err);
}
