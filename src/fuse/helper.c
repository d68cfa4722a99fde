/*
 * helper.c - ckptfs started by mount(8): what mount.fuse3 passes, and
 * how ckptfs knows it was started that way (see ckptfs.h).
 *
 * 'mount -t fuse.ckptfs SRC MNT -o OPTS' and an /etc/fstab line of type
 * fuse.ckptfs run /sbin/mount.fuse (fuse3's mount.fuse3).  mount(8)
 * passes rw or ro first and keeps the userspace options (noauto, user,
 * nofail, _netdev, x-*, comment=) to itself; mount.fuse3 drops nofail,
 * user, nouser, users, auto, noauto and _netdev, acts on setuid= and
 * drop_privileges itself, appends dev and suid unless nodev or nosuid
 * was given, and execs /bin/sh -c "'ckptfs' 'SRC' 'MNT' '-o' 'OPTS'".
 * The shell finds ckptfs in its default PATH: mount(8) removes PATH
 * from its helpers' environment.  ckptfs keeps mount's standard input
 * (a terminal, or /dev/null at boot) and gets no descriptor meant for
 * it, so a key can only come from a file there.
 *
 * What ckptfs does with a generic mount option is the same on its own
 * command line: libfuse maps the kernel's flags (rw, ro, dev, nodev,
 * suid, nosuid, exec, noexec, sync, async, dirsync, atime, noatime);
 * the rest are accepted and ignored here (mount_option_ignored).
 *
 * No state; reads /proc only when asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ckptfs.h"

/* mount(8)'s and systemd's own options, and the kernel's flags that
 * libfuse 3.14 does not know and that change nothing a ckptfs mount
 * shows (it keeps no access times, it has no symbolic links). */
static const char *const ignored[] = {
	"defaults",  "auto",	    "noauto",	   "user",
	"nouser",    "users",	    "owner",	   "group",
	"nofail",    "_netdev",	    "loud",	   "silent",
	"relatime",  "norelatime",  "strictatime", "nostrictatime",
	"lazytime",  "nolazytime",  "diratime",	   "nodiratime",
	"iversion",  "noiversion",  "mand",	   "nomand",
	"symfollow", "nosymfollow",
};

bool mount_option_ignored(const char *opt)
{
	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "X-", 2) ||
	    !strncmp(opt, "comment=", 8))
		return true;
	for (size_t i = 0; i < sizeof(ignored) / sizeof(*ignored); i++)
		if (!strcmp(opt, ignored[i]))
			return true;
	return false;
}

#define CMDLINE_MAX (1 << 20)

/* The NUL-separated arguments of process pid (malloc'd, NUL-terminated
 * once more), their length in *len; NULL if they cannot be read. */
static char *read_cmdline(pid_t pid, size_t *len)
{
	char path[64], *buf = NULL, *more;
	size_t cap = 0, n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		if (cap - n < 2) {
			if (cap >= CMDLINE_MAX)
				goto fail;
			cap = cap ? cap * 2 : 4096;
			more = realloc(buf, cap);
			if (!more)
				goto fail;
			buf = more;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

/* Matches word as mount.fuse3 quotes it ('...', each ' as '\'') at the
 * start of s; the rest of s, or NULL. */
static const char *match_quoted(const char *s, const char *word)
{
	if (*s++ != '\'')
		return NULL;
	for (; *word; word++) {
		if (*word == '\'') {
			if (strncmp(s, "'\\''", 4))
				return NULL;
			s += 4;
		} else if (*s++ != *word) {
			return NULL;
		}
	}
	return *s == '\'' ? s + 1 : NULL;
}

/* True if cmd is the command mount.fuse3 gives the shell for argv. */
static bool is_helper_command(const char *cmd, int argc, char *const argv[])
{
	for (int i = 0; i < argc && cmd; i++) {
		if (i > 0 && *cmd++ != ' ')
			return false;
		cmd = match_quoted(cmd, argv[i]);
	}
	return cmd && *cmd == '\0';
}

/* The last component of path. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

bool started_by_mount_helper(int argc, char *const argv[])
{
	size_t len, a1, a2;
	char *cl = read_cmdline(getppid(), &len);
	bool yes = false;

	if (!cl)
		return false;
	a1 = strlen(cl) + 1; /* the parent's argv[1], if any */
	a2 = a1 < len ? a1 + strlen(cl + a1) + 1 : len;
	if (!strcmp(base_name(cl), "sh") && a2 < len && !strcmp(cl + a1, "-c"))
		yes = is_helper_command(cl + a2, argc, argv);
	else /* a shell that execs the command itself leaves mount(8) */
		yes = !strcmp(base_name(cl), "mount");
	free(cl);
	return yes;
}
