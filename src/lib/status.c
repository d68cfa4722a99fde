/*
 * status.c - the status file of a ckptfs daemon (see ckpt_status.h).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_status.h"

void ckpt_status_path(pid_t pid, char *buf, size_t size)
{
	const char *dir = getenv("XDG_RUNTIME_DIR");

	snprintf(buf, size, "%s/ckptfs-status-%u-%d",
		 dir && *dir ? dir : "/tmp", (unsigned)getuid(), (int)pid);
}

void ckpt_status_write(pid_t pid, const char *fmt, ...)
{
	char path[4096], msg[1024];
	va_list ap;
	int fd, n;

	ckpt_status_path(pid, path, sizeof(path));
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return;
	if (write(fd, msg, (size_t)n) != n || fsync(fd) != 0) {
		/* best effort: the log has the message too */
	}
	close(fd);
}

int ckpt_status_take(pid_t pid, char *buf, size_t size)
{
	char path[4096];
	ssize_t n;
	int fd;

	ckpt_status_path(pid, path, sizeof(path));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, size - 1);
	close(fd);
	unlink(path);
	buf[n > 0 ? n : 0] = '\0';
	return 1;
}
