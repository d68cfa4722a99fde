/*
 * fslog.c - where the daemon's messages go (see ckptfs.h).
 *
 * Each message is formatted once and written with one call per
 * destination, so lines from several threads never interleave: to stderr
 * while a terminal is attached (before daemonizing, or with -f), to syslog
 * (runtime messages, as always), and to the -o log= file, one line each
 * with an ISO 8601 timestamp.
 *
 * Locking: none.  The destinations are set before the session's workers
 * start (log_open_file, log_detach) and closed after they end, and each
 * line is one call per destination.  Never calls into the tree and never
 * fails a request: a message that cannot be written is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ckptfs.h"

static bool to_stderr = true; /* until daemonized without -f */
static int log_fd = -1;	      /* -o log=PATH */

int log_open_file(const char *path)
{
	struct stat st;

	/* O_NONBLOCK: a FIFO without a reader must not hang the mount (it
	 * is refused below, like anything that is not a regular file) */
	log_fd = open(path,
		      O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
			      O_CLOEXEC,
		      0600);
	if (log_fd < 0) {
		fprintf(stderr, "ckptfs: -o log=%s: %s%s\n", path,
			strerror(errno),
			errno == ELOOP ? " (a symbolic link is not followed)"
				       : "");
		return -1;
	}
	if (fstat(log_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "ckptfs: -o log=%s: not a regular file\n",
			path);
		log_close();
		return -1;
	}
	return 0;
}

void log_detach(bool foreground)
{
	to_stderr = foreground;
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
}

/* The word the log file shows for a syslog priority. */
static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_CRIT:
		return "crit";
	case LOG_ERR:
		return "err";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	default:
		return "info";
	}
}

/* Writes "TIMESTAMP ckptfs[PID] PRIO: msg" as one line to the log file:
 * local time to the millisecond with its UTC offset, e.g.
 * 2025-03-01T14:05:09.042+01:00. */
static void file_line(int prio, const char *msg)
{
	char stamp[64], zone[8], line[LOG_LINE_MAX + 128];
	struct timeval tv;
	struct tm tm;
	int n;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm); /* +0100 */
	n = snprintf(line, sizeof(line), "%s.%03ld%.3s:%s ckptfs[%d] %s: %s\n",
		     stamp, (long)(tv.tv_usec / 1000), zone, zone + 3,
		     (int)getpid(), prio_name(prio), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(log_fd, line, (size_t)n) < 0) {
		/* nowhere left to say it */
	}
}

/* Sends msg to the destinations: stderr while attached, syslog if
 * sys, the log file if any. */
static void emit(int prio, bool sys, const char *msg)
{
	if (to_stderr)
		fprintf(stderr, "ckptfs: %s\n", msg);
	if (sys)
		syslog(prio, "%s", msg);
	if (log_fd >= 0)
		file_line(prio, msg);
}

/* Formats a message and emits it (see emit). */
__attribute__((format(printf, 3, 0))) static void
vemit(int prio, bool sys, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(prio, sys, msg);
}

void logmsg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(prio, true, fmt, ap);
	va_end(ap);
}

void say(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vemit(prio, false, fmt, ap);
	va_end(ap);
}
