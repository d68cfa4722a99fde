/*
 * replace.c - putting a written checkpoint in place without ever writing
 * over a file that is not the one the tree holds.
 *
 * A commit's file is created unnamed (O_TMPFILE) in the target's
 * directory, written by commit.c, then here fsynced, given the mode
 * and owner of the file it replaces (never setuid/setgid), locked, linked
 * as ".BASE.ckptfs-tmp-XXXXXXXX" and exchanged with BASE in one
 * renameat2(RENAME_EXCHANGE).  What came out of BASE must be the pinned
 * file; if it is not (someone put another file there), the exchange is
 * undone and the commit fails with nothing lost; between the exchange and
 * its undo the path names our file for a moment, which no primitive of
 * the kernel avoids (there is no "rename if the target is inode X").
 * Then the old file is unlinked and the directory fsynced.
 *
 * A recovery file is written once, unnamed, and linked under
 * "BASE.recovery-STAMP-XXXXXXXX.ckpt" (.safetensors for such a file):
 * linkat never follows or replaces
 * anything, and the random part cannot have been reserved.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit/commit.h"

int ckpt_out_create(int dirfd, const char *base, char *tmpname, size_t size)
{
	char prefix[300];

	snprintf(prefix, sizeof(prefix), CKPT_TMP_PREFIX "tmp-", base);
	return ckpt_tmpfile_at(dirfd, prefix, tmpname, size);
}

/* Links the unnamed file fd into dirfd under prefix + random + suffix;
 * the name is left in name.  0, or -1 with errno. */
static int link_random(int fd, int dirfd, const char *prefix,
		       const char *suffix, char *name, size_t size)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int i = 0; i < 100; i++) {
		ckpt_random_name(name, size, prefix, suffix);
		if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	*name = '\0';
	return -1;
}

static ckpt_err changed(struct ckpt_tree *t, const char *what,
			struct ckpt_error *err)
{
	ckpt_fail(err, CKPT_ERR_CHANGED, 0,
		  "%s %s since it was mounted (or last committed): nothing "
		  "was written over it and every edit is kept",
		  t->tgt_pl.path, what);
	ckpt_set_hint(err, CKPT_HINT_FORCE, 0);
	return CKPT_ERR_CHANGED;
}

ckpt_err ckpt_tree_check_target(struct ckpt_tree *t, struct ckpt_error *err)
{
	struct stat st;

	if (t->base && ckpt_file_changed(t->base))
		return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
				 "%s was modified in place underneath the "
				 "mount: its untouched parameters can no "
				 "longer be read, so nothing was written; "
				 "unmount to save the edited and added "
				 "parameters as a recovery file",
				 ckpt_path(t->base));
	if (t->force)
		return CKPT_OK;
	if (t->pin_fd >= 0 &&
	    (fstat(t->pin_fd, &st) != 0 || !ckpt_ident_same(&t->pin, &st)))
		return changed(t, "was modified in place", err);
	if (fstatat(t->tgt_pl.dirfd, t->tgt_pl.base, &st,
		    AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: %s",
					 t->tgt_pl.path, strerror(errno));
		return t->pin_fd >= 0 ? changed(t, "was deleted", err)
				      : CKPT_OK;
	}
	if (t->pin_fd < 0)
		return changed(t, "was created by someone else", err);
	if (!ckpt_ident_same_file(&t->pin, &st))
		return changed(t, "was replaced by another file", err);
	return CKPT_OK;
}

ckpt_err ckpt_tree_check_source(struct ckpt_tree *t, struct ckpt_error *err)
{
	ckpt_err r;

	pthread_rwlock_rdlock(&t->lock);
	r = ckpt_tree_check_target(t, err);
	pthread_rwlock_unlock(&t->lock);
	return r;
}

void ckpt_tree_force(struct ckpt_tree *t)
{
	pthread_rwlock_wrlock(&t->lock);
	t->force = true;
	pthread_rwlock_unlock(&t->lock);
}

/* Mode and owner of the file being replaced, without setuid, setgid and
 * sticky bits; a new file gets 0644 and our own ids. */
static int set_mode(struct ckpt_tree *t, int fd)
{
	if (t->pin_fd < 0)
		return fchmod(fd, 0644);
	if (geteuid() == 0 &&
	    (t->pin_uid != geteuid() || t->pin_gid != getegid()) &&
	    fchown(fd, t->pin_uid, t->pin_gid) != 0) {
		/* keeps our ids: the mode below still applies */
	}
	return fchmod(fd, t->pin_mode & 0777);
}

/* Exchanges tmp with the target; the file that comes out must be the
 * pinned one (unless forced), else the exchange is undone. */
static ckpt_err exchange(struct ckpt_tree *t, const char *tmp,
			 struct ckpt_error *err)
{
	int d = t->tgt_pl.dirfd;
	const char *base = t->tgt_pl.base;
	struct stat st;

	if (renameat2(d, tmp, d, base, RENAME_EXCHANGE) != 0) {
		if (errno == ENOENT) /* the target went away meanwhile */
			return changed(t, "was deleted", err);
		if (errno != EINVAL) /* EINVAL: no exchange on this fs */
			return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: rename: %s",
					 t->tgt_pl.path, strerror(errno));
		if (renameat(d, tmp, d, base) != 0) /* checked just before */
			return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: rename: %s",
					 t->tgt_pl.path, strerror(errno));
		return CKPT_OK;
	}
	if (!t->force && (fstatat(d, tmp, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
			  !ckpt_ident_same_file(&t->pin, &st))) {
		renameat2(d, tmp, d, base, RENAME_EXCHANGE); /* undo */
		return changed(t, "was replaced by another file", err);
	}
	unlinkat(d, tmp, 0); /* the old checkpoint */
	return CKPT_OK;
}

/* True if name in dirfd is the file open as fd. */
static bool same_file_at(int dirfd, const char *name, int fd)
{
	struct stat a, b;

	return fstatat(dirfd, name, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
	       fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* Opens the linked file name again (a descriptor whose name follows the
 * renames, unlike that of an unnamed file) and takes the writer lock on
 * it; -1 (err filled) if that fails or it is not fd's file. */
static int open_locked(struct ckpt_tree *t, int fd, const char *name,
		       struct ckpt_error *err)
{
	int lfd =
		openat(t->tgt_pl.dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat a, b;

	if (lfd < 0 || fstat(lfd, &a) != 0 || fstat(fd, &b) != 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		ckpt_fail(err, CKPT_ERR_IO, 0,
			  "%s: the new checkpoint could "
			  "not be opened again: %s",
			  t->tgt_pl.path,
			  lfd < 0 ? strerror(errno)
				  : "another file took its "
				    "name");
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if (ckpt_lock_writer(lfd, t->tgt_pl.path, err) != CKPT_OK) {
		close(lfd);
		return -1;
	}
	return lfd;
}

ckpt_err ckpt_replace_target(struct ckpt_tree *t, int fd, const char *tmp,
			     bool *in_place, int *lfd, struct ckpt_error *err)
{
	char name[300], prefix[300];
	int d = t->tgt_pl.dirfd;
	struct stat st;
	ckpt_err r;

	*lfd = -1;
	strcpy(name, tmp);
	if (set_mode(t, fd) != 0 || fsync(fd) != 0)
		r = ckpt_write_failed(err, t->tgt_pl.path, "fsync", NULL);
	else
		r = ckpt_tree_check_target(t, err); /* again, after writing */
	snprintf(prefix, sizeof(prefix), CKPT_TMP_PREFIX "tmp-",
		 t->tgt_pl.base);
	if (!r && !*name &&
	    link_random(fd, d, prefix, "", name, sizeof(name)) != 0)
		r = ckpt_fail(err, CKPT_ERR_IO, 0, "%s: link: %s",
			      t->tgt_pl.path, strerror(errno));
	if (!r && (*lfd = open_locked(t, fd, name, err)) < 0)
		r = err ? err->code : CKPT_ERR_IO;
	if (r)
		goto fail;
	if (t->pin_fd >= 0 &&
	    !(t->force && fstatat(d, t->tgt_pl.base, &st, AT_SYMLINK_NOFOLLOW)))
		r = exchange(t, name, err);
	else if (renameat2(d, name, d, t->tgt_pl.base,
			   t->force ? 0 : RENAME_NOREPLACE) != 0)
		r = errno == EEXIST
			    ? changed(t, "was created by someone else", err)
			    : ckpt_fail(err, CKPT_ERR_IO, 0, "%s: rename: %s",
					t->tgt_pl.path, strerror(errno));
	if (r)
		goto fail;
	*in_place = true;
	if (fsync(d) != 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0,
				 "the new checkpoint %s is complete and in "
				 "place, but its directory could not be synced "
				 "(%s): it may not survive a power failure; "
				 "commit again",
				 t->tgt_pl.path, strerror(errno));
	return CKPT_OK;
fail:
	if (*name && same_file_at(d, name, fd)) /* never someone else's */
		unlinkat(d, name, 0);
	if (*lfd >= 0)
		close(*lfd);
	*lfd = -1;
	return r;
}

void ckpt_tree_drop_replaced(struct ckpt_tree *t)
{
	int fd;

	pthread_rwlock_wrlock(&t->lock);
	fd = t->replaced_fd;
	t->replaced_fd = -1;
	pthread_rwlock_unlock(&t->lock);
	if (fd >= 0)
		close(fd);
}

void ckpt_repin(struct ckpt_tree *t, int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0) { /* keeps the old pin: commits refuse */
		close(fd);
		return;
	}
	if (t->replaced_fd >= 0) /* the one before: nobody dropped it */
		close(t->replaced_fd);
	t->replaced_fd = t->pin_fd; /* see ckpt_tree_drop_replaced */
	t->pin_fd = fd;
	ckpt_ident_of(&st, &t->pin);
	t->pin_mode = st.st_mode;
	t->pin_uid = st.st_uid;
	t->pin_gid = st.st_gid;
	t->force = false;
}

/* ---- recovery files ------------------------------------------------------ */

ckpt_err ckpt_link_recovery(struct ckpt_tree *t, int fd, int dirfd, char **path,
			    struct ckpt_error *err)
{
	char prefix[400], name[450], stamp[32];
	const char *dir = dirfd == t->tgt_pl.dirfd ? t->tgt_pl.path
						   : t->tmp_path;
	int dlen = dirfd == t->tgt_pl.dirfd ? (int)(strrchr(dir, '/') - dir)
					    : (int)strlen(dir);
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(prefix, sizeof(prefix), "%.200s.recovery-%s-", t->tgt_pl.base,
		 stamp); /* 200 + 39 < NAME_MAX */
	*path = malloc((size_t)dlen + sizeof(name) + 2); /* before linking */
	if (!*path)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	if (fchmod(fd, 0600) != 0 || fsync(fd) != 0 ||
	    link_random(fd, dirfd, prefix, t->format->extension, name,
			sizeof(name)) != 0) {
		free(*path);
		*path = NULL;
		return ckpt_fail(err, CKPT_ERR_IO, 0,
				 "saving the recovery "
				 "file failed: %s",
				 strerror(errno));
	}
	fsync(dirfd);
	snprintf(*path, (size_t)dlen + sizeof(name) + 2, "%.*s/%s", dlen, dir,
		 name);
	return CKPT_OK;
}
