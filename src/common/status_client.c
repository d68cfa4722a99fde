/*
 * status_client.c - the side of 'ckpt umount' and 'ckpt commit' in the
 * protocol of ckpt_common.h: the control values of a mount's root (the
 * daemon's pid, its status socket, the last commit's error, whether the
 * checkpoint changed, the progress of a commit, forcing), the commit by
 * fsync, and the status socket, reached through a descriptor of its
 * directory and trusted only if it is served by the daemon's pid and the
 * mount owner's uid (SO_PEERCRED).
 *
 * No state, no locks, no threads.  Never prints: every message goes into
 * the caller's buffer, so that the command line words the outcome.  Never
 * unmounts: that (fusermount3) is the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ckpt_common.h"

/* ---- the mount's root -------------------------------------------------- */

/* Reads the root xattr name of mnt as a string into buf (size > 1).  Its
 * length, or -1 with errno. */
static ssize_t root_xattr(const char *mnt, const char *name, char *buf,
			  size_t size)
{
	ssize_t n = getxattr(mnt, name, buf, size - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

enum ckpt_mount_state ckpt_status_daemon(const char *mnt, pid_t *pid)
{
	char buf[32];
	ssize_t n = root_xattr(mnt, CKPT_XATTR_PID, buf, sizeof(buf));

	*pid = 0;
	if (n < 0 && errno == ENOTCONN)
		return CKPT_MOUNT_STALE;
	if (n <= 0 || atoi(buf) <= 0)
		return CKPT_MOUNT_FOREIGN;
	*pid = (pid_t)atoi(buf);
	return CKPT_MOUNT_SERVED;
}

int ckpt_status_force(const char *mnt)
{
	return setxattr(mnt, CKPT_XATTR_FORCE, "1", 1, 0);
}

enum ckpt_commit_result ckpt_status_commit(const char *mnt, char *msg,
					   size_t size)
{
	char changed[8];
	int e, dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0 && fsync(dfd) == 0) {
		close(dfd);
		return CKPT_COMMIT_DONE;
	}
	e = errno;
	if (dfd >= 0)
		close(dfd);
	/* EACCES: no commit was tried, an earlier failure is not the cause */
	if (e == EACCES || root_xattr(mnt, CKPT_XATTR_ERROR, msg, size) <= 0)
		snprintf(msg, size, "%s", strerror(e));
	if (root_xattr(mnt, CKPT_XATTR_CHANGED, changed, sizeof(changed)) > 0 &&
	    strcmp(changed, "1") == 0)
		return CKPT_COMMIT_CHANGED;
	return CKPT_COMMIT_FAILED;
}

int ckpt_status_progress(const char *mnt, uint64_t *done, uint64_t *total)
{
	char buf[64];
	unsigned long long d, t;

	if (root_xattr(mnt, CKPT_XATTR_PROGRESS, buf, sizeof(buf)) < 0)
		return -1;
	if (sscanf(buf, "%llu %llu", &d, &t) != 2 || d > t) {
		errno = EINVAL;
		return -1;
	}
	*done = d;
	*total = t;
	return 0;
}

/* ---- who serves the socket --------------------------------------------- */

/* Undoes the octal escapes (\040) of a /proc/self/mountinfo field. */
static void unescape_octal(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* The user the kernel records as the owner of the FUSE mount at mnt
 * (user_id= in /proc/self/mountinfo); our own uid if it is not found. */
static uid_t mount_owner(const char *mnt)
{
	char real[PATH_MAX], *line = NULL, *opt;
	unsigned owner = (unsigned)getuid();
	size_t cap = 0;
	FILE *f;

	if (!realpath(mnt, real) || !(f = fopen("/proc/self/mountinfo", "re")))
		return owner;
	while (getline(&line, &cap, f) > 0) {
		char point[PATH_MAX];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
			continue;
		unescape_octal(point);
		opt = strstr(line, " - ");
		opt = opt ? strstr(opt, "user_id=") : NULL;
		if (strcmp(point, real) == 0 && opt)
			sscanf(opt, "user_id=%u", &owner); /* the last wins */
	}
	free(line);
	fclose(f);
	return (uid_t)owner;
}

/* ---- the socket -------------------------------------------------------- */

/* Connects fd to the socket at path through a descriptor of its
 * directory (a short address whatever the path's length).  0 or -1. */
static int connect_path(int fd, const char *path)
{
	const char *slash = strrchr(path, '/');
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *dir;
	int dfd, r;

	if (!slash || !slash[1] || strlen(slash + 1) > 64) {
		errno = EINVAL;
		return -1;
	}
	dir = strndup(path, (size_t)(slash - path) + (slash == path));
	if (!dir)
		return -1;
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (dfd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd,
		 slash + 1);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(dfd);
	return r;
}

/* Connects to the status socket at path and checks that its peer is
 * process pid running as uid.  The connected descriptor, or
 * CKPT_STATUS_UNREACHABLE or _UNTRUSTED with a message in msg. */
static int connect_checked(const char *path, pid_t pid, uid_t uid, char *msg,
			   size_t size)
{
	struct ucred cred = {0};
	socklen_t len = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect_path(fd, path) != 0) {
		snprintf(msg, size,
			 "cannot reach the daemon's status socket "
			 "%s: %s",
			 path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CKPT_STATUS_UNREACHABLE;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    cred.pid != pid || cred.uid != uid) {
		snprintf(
			msg, size,
			"the status socket %s is not the daemon's: "
			"it is served by pid %d (uid %u), the daemon is pid %d "
			"(uid %u)",
			path, (int)cred.pid, (unsigned)cred.uid, (int)pid,
			(unsigned)uid);
		close(fd);
		return CKPT_STATUS_UNTRUSTED;
	}
	return fd;
}

int ckpt_status_open(const char *mnt, pid_t pid, char *msg, size_t size)
{
	char path[PATH_MAX];

	if (root_xattr(mnt, CKPT_XATTR_STATUS, path, sizeof(path)) <= 0)
		return CKPT_STATUS_NO_SOCKET;
	return connect_checked(path, pid, mount_owner(mnt), msg, size);
}

int ckpt_status_read(int fd, char *buf, size_t size)
{
	size_t used = 0;

	while (used + 1 < size) {
		ssize_t n = read(fd, buf + used, size - 1 - used);
		char *nl;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		used += (size_t)n;
		buf[used] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			return 1;
		}
	}
	return 1; /* a line longer than buf: what fits */
}
