/*
 * ckpt.c - the FUSE-free command-line tool on libckpt.
 *
 *   ckpt ls [-l] FILE        parameter names (with -l: dtype, shape, bytes)
 *   ckpt cat FILE NAME       raw bytes of one parameter to stdout
 *   ckpt info FILE           counts, bytes, dtypes, crc
 *   ckpt verify FILE         structure and crc; exit 0 only when valid
 *   ckpt umount MOUNTPOINT   commit, unmount, wait for the daemon
 *
 * Exit status: 0 success, 1 the checkpoint or an operation failed, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_status.h"

static const char usage[] =
	"usage: ckpt COMMAND [OPTIONS] FILE [NAME]\n"
	"\n"
	"Inspect a MindSpore checkpoint (.ckpt) without mounting it.\n"
	"\n"
	"commands:\n"
	"  ls [-l] FILE       list parameters, one per line, named as in the\n"
	"                     mount ('/' shown as %2F, '%' as %25; map values\n"
	"                     as NAME/keys, NAME/values, NAME/status);\n"
	"                     -l adds dtype, shape and byte count\n"
	"  cat FILE NAME      write the raw bytes of parameter NAME to stdout\n"
	"  info FILE          summary: counts, bytes, dtypes, crc trailer\n"
	"  verify FILE        check structure and crc; exit 0 only if valid\n"
	"  umount MOUNTPOINT  commit the edits of a ckptfs mount, unmount it\n"
	"                     and wait until the daemon has finished; if the\n"
	"                     commit fails, nothing is unmounted and the\n"
	"                     reason is printed\n"
	"\n"
	"options:\n"
	"  -h, --help         show this help\n"
	"  -V, --version      show the version\n"
	"\n"
	"Exit status: 0 success, 1 invalid checkpoint or failed operation,\n"
	"2 bad usage.\n";

static int open_or_report(const char *path, struct ckpt_file **f)
{
	struct ckpt_error err;

	if (ckpt_open(path, NULL, f, &err) != CKPT_OK) {
		fprintf(stderr, "ckpt: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static void print_entry(const char *name, const char *sub,
			const struct ckpt_tensor *t, bool lng, bool map_sub)
{
	char shape[256];

	if (lng) {
		ckpt_shape_format(t->dims, t->ndims, shape, sizeof(shape));
		printf("%-10s %-16s %12llu  ",
		       map_sub ? t->type_str : ckpt_dtype_name(t->dtype),
		       shape, (unsigned long long)t->size);
	}
	printf("%s%s%s\n", name, sub ? "/" : "", sub ? sub : "");
}

static int cmd_ls(int argc, char **argv)
{
	struct ckpt_file *f;
	bool lng = false;
	int c;

	while ((c = getopt(argc, argv, "l")) != -1) {
		if (c != 'l') {
			fputs(usage, stderr);
			return 2;
		}
		lng = true;
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (open_or_report(argv[optind], &f))
		return 1;
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (p->kind == CKPT_PARAM_TENSOR) {
			print_entry(p->fname, NULL, &p->tensor, lng, false);
			continue;
		}
		for (int k = 0; k < CKPT_MAP_NTENSORS; k++)
			print_entry(p->fname, ckpt_map_names[k], &p->map[k],
				    lng, true);
	}
	ckpt_close(f);
	return fflush(stdout) ? 1 : 0;
}

/* Finds NAME or NAME/keys|values|status. */
static const struct ckpt_tensor *find_tensor(const struct ckpt_file *f,
					     const char *name)
{
	const char *slash = strrchr(name, '/');
	ssize_t i = ckpt_find(f, name);
	char *base;

	if (i >= 0)
		return ckpt_param_at(f, (size_t)i)->kind == CKPT_PARAM_TENSOR
			       ? &ckpt_param_at(f, (size_t)i)->tensor
			       : NULL;
	if (!slash)
		return NULL;
	base = strndup(name, (size_t)(slash - name));
	if (!base)
		return NULL;
	i = ckpt_find(f, base);
	free(base);
	if (i < 0 || ckpt_param_at(f, (size_t)i)->kind != CKPT_PARAM_MAP)
		return NULL;
	for (int k = 0; k < CKPT_MAP_NTENSORS; k++)
		if (strcmp(slash + 1, ckpt_map_names[k]) == 0)
			return &ckpt_param_at(f, (size_t)i)->map[k];
	return NULL;
}

static int cmd_cat(int argc, char **argv)
{
	enum { CHUNK = 1 << 20 };
	const struct ckpt_tensor *t;
	struct ckpt_error err;
	struct ckpt_file *f;
	uint64_t off = 0;
	char *buf = NULL;
	int ret = 1;

	if (argc != 3) {
		fputs(usage, stderr);
		return 2;
	}
	if (open_or_report(argv[1], &f))
		return 1;
	t = find_tensor(f, argv[2]);
	if (!t) {
		fprintf(stderr, "ckpt: %s: no parameter named '%s' (see "
			"'ckpt ls %s')\n", argv[1], argv[2], argv[1]);
		goto out;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		fprintf(stderr, "ckpt: out of memory\n");
		goto out;
	}
	while (off < t->size) {
		ssize_t n = ckpt_tensor_read(f, t, buf, CHUNK, off, &err);
		if (n < 0) {
			fprintf(stderr, "ckpt: %s\n", err.msg);
			goto out;
		}
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
			fprintf(stderr, "ckpt: writing to stdout: %s\n",
				strerror(errno));
			goto out;
		}
		off += (uint64_t)n;
	}
	ret = fflush(stdout) ? 1 : 0;
out:
	free(buf);
	ckpt_close(f);
	return ret;
}

static int cmd_info(int argc, char **argv)
{
	uint64_t count[CKPT_DT_COUNT] = {0}, maps = 0, sliced = 0;
	const struct ckpt_stats *st;
	struct ckpt_file *f;

	if (argc != 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (open_or_report(argv[1], &f))
		return 1;
	st = ckpt_stats(f);
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (p->kind == CKPT_PARAM_MAP)
			maps++;
		else
			count[p->tensor.dtype]++;
		if (p->nslices > 1)
			sliced++;
	}
	printf("file:        %s\n", ckpt_path(f));
	printf("size:        %llu bytes\n",
	       (unsigned long long)st->file_size);
	printf("parameters:  %zu (%llu map, %llu sliced)\n", ckpt_count(f),
	       (unsigned long long)maps, (unsigned long long)sliced);
	printf("records:     %llu\n", (unsigned long long)st->records);
	printf("data:        %llu bytes\n",
	       (unsigned long long)st->data_bytes);
	printf("dtypes:     ");
	for (int d = 0; d < CKPT_DT_COUNT; d++)
		if (count[d])
			printf(" %s x%llu", ckpt_dtype_name((ckpt_dtype)d),
			       (unsigned long long)count[d]);
	printf("%s\n", st->data_bytes || ckpt_count(f) ? "" : " none");
	if (st->has_crc)
		printf("crc:         present, 0x%08x, %s\n", st->crc_stored,
		       st->crc_checked ? "valid" : "not checked");
	else
		printf("crc:         none\n");
	if (st->unknown_fields)
		printf("note:        %llu unknown top-level field(s) skipped "
		       "(MindSpore 0.5 model_type)\n",
		       (unsigned long long)st->unknown_fields);
	if (st->duplicates)
		printf("note:        %llu name(s) appear twice; the later "
		       "data is shown, as MindSpore loads it\n",
		       (unsigned long long)st->duplicates);
	ckpt_close(f);
	return fflush(stdout) ? 1 : 0;
}

static int cmd_verify(int argc, char **argv)
{
	const struct ckpt_stats *st;
	struct ckpt_file *f;

	if (argc != 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (open_or_report(argv[1], &f))
		return 1;
	st = ckpt_stats(f);
	printf("%s: OK: %zu parameters, %llu data bytes, crc %s\n",
	       ckpt_path(f), ckpt_count(f),
	       (unsigned long long)st->data_bytes,
	       st->has_crc ? "valid" : "absent");
	ckpt_close(f);
	return 0;
}

/* Runs fusermount3 -u MOUNTPOINT; returns its exit status. */
static int fusermount_u(const char *mnt)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mnt,
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int cmd_umount(int argc, char **argv)
{
	char buf[1024], msg[1024];
	const char *mnt;
	ssize_t n;
	int dfd, pidfd;
	pid_t pid;

	if (argc != 2) {
		fputs(usage, stderr);
		return 2;
	}
	mnt = argv[1];
	n = getxattr(mnt, CKPT_XATTR_PID, buf, sizeof(buf) - 1);
	if (n <= 0) {
		fprintf(stderr, "ckpt: %s is not a ckptfs mount point\n", mnt);
		return 1;
	}
	buf[n] = '\0';
	pid = (pid_t)atoi(buf);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		int e = errno;
		n = getxattr(mnt, CKPT_XATTR_ERROR, msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "ckpt: commit of %s failed: %s\n", mnt,
			n > 0 ? msg : strerror(e));
		fprintf(stderr, "ckpt: nothing was unmounted; the edits are "
			"still in the mount: fix the problem and run 'ckpt "
			"umount %s' again\n", mnt);
		if (dfd >= 0)
			close(dfd);
		if (pidfd >= 0)
			close(pidfd);
		return 1;
	}
	close(dfd);
	if (fusermount_u(mnt) != 0) {
		fprintf(stderr, "ckpt: fusermount3 -u %s failed; the edits "
			"are committed\n", mnt);
		if (pidfd >= 0)
			close(pidfd);
		return 1;
	}
	if (pidfd >= 0) { /* wait for the daemon's last commit */
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		close(pidfd);
	}
	if (ckpt_status_take(pid, msg, sizeof(msg))) {
		fprintf(stderr, "ckpt: %s\n", msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {{"ls", cmd_ls}, {"cat", cmd_cat}, {"info", cmd_info},
		    {"verify", cmd_verify}, {"umount", cmd_umount}};

	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("ckpt %s\n", CKPT_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ckpt: unknown command '%s'\n%s", argv[1], usage);
	return 2;
}
