/*
 * ckpt.c - the FUSE-free command-line tool on libckpt.
 *
 *   ckpt ls [-l] FILE        parameter names (with -l: dtype, shape, bytes)
 *   ckpt cat FILE NAME...    raw bytes of parameters to stdout, in order
 *   ckpt info FILE           counts, bytes, dtypes, crc
 *   ckpt verify FILE         structure and crc; exit 0 only when valid
 *   ckpt umount MOUNTPOINT   commit, unmount, wait for the daemon
 *   ckpt convert IN OUT      re-encode: encrypt, decrypt, re-key, crc
 *
 * Exit status: 0 success, 1 the checkpoint or an operation failed, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_hint.h"
#include "ckpt_status.h"
#include "ckpt_tree.h"

static const char usage[] =
	"usage: ckpt COMMAND [OPTIONS] ARGS\n"
	"\n"
	"Inspect and convert MindSpore checkpoints (.ckpt) without mounting.\n"
	"\n"
	"commands:\n"
	"  ls [-l] FILE       list parameters, one per line, named as in the\n"
	"                     mount ('/' shown as %2F, '%' as %25; map values\n"
	"                     as NAME/keys, NAME/values, NAME/status);\n"
	"                     -l adds dtype, shape and byte count\n"
	"  cat FILE NAME...   write the raw bytes of each parameter NAME to\n"
	"                     stdout, one after another; if any NAME is\n"
	"                     missing, nothing is written\n"
	"  info FILE          summary: counts, bytes, dtypes, crc, encryption\n"
	"  verify FILE        check structure, crc and (AES-GCM) authenticity;\n"
	"                     exit 0 only if valid\n"
	"  umount [--force] MOUNTPOINT\n"
	"                     commit the edits of a ckptfs mount, unmount it\n"
	"                     and wait until the daemon has finished; if the\n"
	"                     commit fails, nothing is unmounted and the\n"
	"                     reason is printed, unless the checkpoint was\n"
	"                     replaced or modified underneath: then the edits\n"
	"                     are saved as a recovery file beside it (its path\n"
	"                     is printed); --force instead commits over\n"
	"                     whatever file the path holds now\n"
	"  convert IN OUT     write IN again as OUT, streaming: encrypt,\n"
	"                     decrypt, re-key, change mode, add or drop the crc\n"
	"\n"
	"key options (ls, cat, info, verify, convert: the key of FILE or IN):\n"
	"  --enc-mode MODE    AES-GCM, AES-CBC or SM4-CBC\n"
	"  --keyfile PATH     the raw key bytes (MindSpore's enc_key); '-' reads\n"
	"                     them from standard input\n"
	"  --keyfd N          read the key from inherited descriptor N (not\n"
	"                     with --keyfile)\n"
	"  --ignore-crc       open a file whose crc_num trailer does not match\n"
	"convert options (default: same encryption and crc as IN):\n"
	"  --out-enc-mode MODE, --out-keyfile PATH, --out-keyfd N\n"
	"                     encrypt OUT with this mode and key\n"
	"  --decrypt          write OUT in plain\n"
	"  --crc / --no-crc   add / drop the crc_num trailer\n"
	"  -q, --quiet        no progress display\n"
	"\n"
	"  -h, --help         show this help\n"
	"  -V, --version      show the version\n"
	"\n"
	"Keys are never accepted on the command line, where every user could\n"
	"read them with ps.  Encryption and decryption use one thread per\n"
	"CPU (at most 8); CKPT_CRYPTO_THREADS=N in the environment sets the\n"
	"count (1-64).\n"
	"Exit status: 0 success, 1 invalid checkpoint or failed operation,\n"
	"2 bad usage.\n";

/* Options shared by the commands. */
struct cli {
	bool lng, quiet, ignore_crc, decrypt, crc, no_crc, force;
	const char *mode, *keyfile, *out_mode, *out_keyfile;
	int keyfd, out_keyfd;
	struct ckpt_key *key, *out_key;
};

/* Prints a library failure with what to do about it. */
static void report(const struct ckpt_error *err)
{
	char text[1024];

	fprintf(stderr, "ckpt: %s\n",
		ckpt_error_text(err, CKPT_FRONT_CLI, text, sizeof(text)));
}

/* Loads a key given by mode and keyfile or keyfd; none given: no key. */
static int load_key(const char *mode, const char *keyfile, int keyfd,
		    struct ckpt_key **out)
{
	bool given = mode || keyfile || keyfd >= 0;
	enum ckpt_enc_mode m;
	struct ckpt_error err;

	*out = NULL;
	if (given && (!mode || !ckpt_enc_mode_parse(mode, &m) ||
		      (!keyfile && keyfd < 0))) {
		fprintf(stderr, "ckpt: a key needs --enc-mode (AES-GCM, "
			"AES-CBC or SM4-CBC) and --keyfile or --keyfd\n");
		return 2;
	}
	if (ckpt_key_load(mode, keyfile, keyfd, out, &err)) {
		report(&err);
		return keyfile && keyfd >= 0 ? 2 : 1; /* both: bad usage */
	}
	return 0;
}

/* Opens path with the key and CRC options of c; 1 after a message. */
static int open_or_report(const struct cli *c, const char *path,
			  struct ckpt_file **f)
{
	struct ckpt_open_opts oo = {.key = c->key,
				    .skip_crc = c->ignore_crc};
	struct ckpt_error err;

	if (ckpt_open(path, &oo, f, &err) != CKPT_OK) {
		report(&err);
		return 1;
	}
	if (ckpt_stats(*f)->enc_legacy)
		fprintf(stderr, "ckpt: warning: %s uses the MindSpore 1.3-1.6 "
			"encryption layout, which is not authenticated\n",
			path);
	return 0;
}

/* One line of ls (with lng: dtype, shape, bytes first). */
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

/* ls [-l] FILE. */
static int cmd_ls(struct cli *c, int argc, char **argv)
{
	struct ckpt_file *f;
	bool lng = c->lng;

	if (argc != 1)
		return -1;
	if (open_or_report(c, argv[0], &f))
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

/* Writes the bytes of t to stdout; 0, or 1 after a message. */
static int cat_tensor(struct ckpt_file *f, const struct ckpt_tensor *t,
		      char *buf, size_t cap)
{
	struct ckpt_error err;
	uint64_t off = 0;

	while (off < t->size) {
		size_t n;
		if (ckpt_tensor_read(f, t, buf, cap, off, &n, &err)) {
			report(&err);
			return 1;
		}
		if (fwrite(buf, 1, n, stdout) != n) {
			fprintf(stderr, "ckpt: writing to stdout: %s\n",
				strerror(errno));
			return 1;
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* cat FILE NAME...: every name is looked up before any byte is written, so
 * a typo yields no output rather than a shifted concatenation. */
static int cmd_cat(struct cli *cl, int argc, char **argv)
{
	enum { CHUNK = 1 << 20 };
	const struct ckpt_tensor **ts = NULL;
	char **names = argv + 1;
	int n = argc - 1;
	struct ckpt_file *f;
	char *buf = NULL;
	int ret = 1;

	if (n < 1)
		return -1;
	if (open_or_report(cl, argv[0], &f))
		return 1;
	ts = calloc((size_t)n, sizeof(*ts));
	buf = malloc(CHUNK);
	if (!ts || !buf) {
		fprintf(stderr, "ckpt: out of memory\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		ts[i] = find_tensor(f, names[i]);
		if (!ts[i]) {
			fprintf(stderr, "ckpt: %s: no parameter named '%s' "
				"(see 'ckpt ls %s')\n", argv[0], names[i],
				argv[0]);
			goto out;
		}
	}
	for (int i = 0; i < n; i++)
		if (cat_tensor(f, ts[i], buf, CHUNK))
			goto out;
	ret = fflush(stdout) ? 1 : 0;
out:
	free(buf);
	free(ts);
	ckpt_close(f);
	return ret;
}

/* info FILE: counts, bytes, dtypes, encryption, crc. */
static int cmd_info(struct cli *c, int argc, char **argv)
{
	uint64_t count[CKPT_DT_COUNT] = {0}, maps = 0, sliced = 0;
	const struct ckpt_stats *st;
	struct ckpt_file *f;

	if (argc != 1)
		return -1;
	if (open_or_report(c, argv[0], &f))
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
	       (unsigned long long)st->disk_size);
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
	if (st->enc_mode != CKPT_ENC_NONE)
		printf("encryption:  %s, %llu block(s)%s\n",
		       ckpt_enc_mode_name(st->enc_mode),
		       (unsigned long long)st->enc_blocks,
		       st->enc_legacy ? ", legacy 1.3-1.6 layout "
					"(unauthenticated)" : "");
	else
		printf("encryption:  none\n");
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

/* verify FILE: exit 0 only if structure, crc and authentication hold. */
static int cmd_verify(struct cli *c, int argc, char **argv)
{
	const struct ckpt_stats *st;
	struct ckpt_file *f;

	if (argc != 1)
		return -1;
	c->ignore_crc = false; /* verify always checks it */
	if (open_or_report(c, argv[0], &f))
		return 1;
	st = ckpt_stats(f);
	printf("%s: OK: %zu parameter%s, %llu data bytes, crc %s%s%s\n",
	       ckpt_path(f), ckpt_count(f), ckpt_count(f) == 1 ? "" : "s",
	       (unsigned long long)st->data_bytes,
	       st->has_crc ? "valid" : "absent",
	       st->enc_mode == CKPT_ENC_NONE ? "" : ", decrypted with ",
	       st->enc_mode == CKPT_ENC_NONE
		       ? ""
		       : st->enc_mode == CKPT_ENC_AES_GCM && !st->enc_legacy
				 ? "AES-GCM, every block authenticated"
				 : ckpt_enc_mode_name(st->enc_mode));
	ckpt_close(f);
	return 0;
}

/* Runs fusermount3 -u (lazy: -uz) MOUNTPOINT; returns its exit status. */
static int fusermount_u(const char *mnt, bool lazy)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", "--",
		       mnt, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads the root xattr name of mnt as a string into buf (size > 1).  Its
 * length, or -1 with errno. */
static ssize_t root_xattr(const char *mnt, const char *name, char *buf,
			  size_t size)
{
	ssize_t n = getxattr(mnt, name, buf, size - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* The pid of mnt's daemon, or 0 after a message (not a ckptfs mount, or a
 * dead daemon's mount, which is then removed). */
static pid_t daemon_pid(const char *mnt)
{
	char buf[32];
	ssize_t n = root_xattr(mnt, CKPT_XATTR_PID, buf, sizeof(buf));

	if (n < 0 && errno == ENOTCONN) {
		fprintf(stderr, "ckpt: the ckptfs daemon of %s is gone (it "
			"crashed or was killed): the checkpoint holds what the "
			"last successful commit (fsync) wrote, and later edits "
			"are lost; removing the stale mount point\n", mnt);
		if (fusermount_u(mnt, true) != 0)
			fprintf(stderr, "ckpt: fusermount3 -uz %s failed\n",
				mnt);
		return 0;
	}
	if (n <= 0 || atoi(buf) <= 0) {
		fprintf(stderr, "ckpt: %s is not a ckptfs mount point\n", mnt);
		return 0;
	}
	return (pid_t)atoi(buf);
}

/* Undoes the octal escapes (\040) of a /proc/self/mountinfo field. */
static void unescape_octal(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
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

/* Connects to the status socket of daemon pid of mnt.  The descriptor;
 * -1 if the daemon has none (warned: the outcome of the commit at unmount
 * cannot be reported); -2 if the socket is not the daemon's (said). */
static int open_status(const char *mnt, pid_t pid)
{
	char path[PATH_MAX], msg[PATH_MAX + 256];
	int fd;

	if (root_xattr(mnt, CKPT_XATTR_STATUS, path, sizeof(path)) <= 0) {
		fprintf(stderr, "ckpt: warning: the daemon of %s has no status "
			"socket: the outcome of its commit at unmount cannot be "
			"reported (see its log)\n", mnt);
		return -1;
	}
	fd = ckpt_status_connect(path, pid, mount_owner(mnt), msg,
				 sizeof(msg));
	if (fd == -2)
		fprintf(stderr, "ckpt: %s; not trusting it: nothing was "
			"unmounted\n", msg);
	else if (fd < 0)
		fprintf(stderr, "ckpt: warning: %s: the outcome of the commit "
			"at unmount cannot be reported (see the daemon's "
			"log)\n", msg);
	return fd;
}

/* Makes the next commit replace whatever file the path holds now. */
static int force_commit(const char *mnt)
{
	if (setxattr(mnt, CKPT_XATTR_FORCE, "1", 1, 0) == 0)
		return 0;
	fprintf(stderr, "ckpt: cannot force the commit of %s: %s; nothing "
		"was unmounted\n", mnt, strerror(errno));
	return -1;
}

enum commit_result { COMMITTED, KEEP_MOUNT, SAVE_RECOVERY };

/* fsync of mnt's root: commits every edit.  On failure says why and
 * whether the mount stays (fix it, run again) or unmounting saves a
 * recovery file (the checkpoint was replaced or modified underneath). */
static enum commit_result commit_mount(const char *mnt)
{
	char msg[2048], changed[8];
	int e, dfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0 && fsync(dfd) == 0) {
		close(dfd);
		return COMMITTED;
	}
	e = errno;
	if (dfd >= 0)
		close(dfd);
	/* EACCES: no commit was tried, an earlier failure is not the cause */
	fprintf(stderr, "ckpt: commit of %s failed: %s\n", mnt,
		e != EACCES && root_xattr(mnt, CKPT_XATTR_ERROR, msg,
					  sizeof(msg)) > 0 ? msg : strerror(e));
	if (root_xattr(mnt, CKPT_XATTR_CHANGED, changed, sizeof(changed)) > 0 &&
	    strcmp(changed, "1") == 0) {
		fprintf(stderr, "ckpt: unmounting: the edits are saved as a "
			"recovery file\n");
		return SAVE_RECOVERY;
	}
	fprintf(stderr, "ckpt: nothing was unmounted; the edits are still in "
		"the mount: fix the problem and run 'ckpt umount %s' again\n",
		mnt);
	return KEEP_MOUNT;
}

/* Reads the daemon's last line from status socket sfd (-1: none) and
 * reports it.  0 if the commit at unmount succeeded (or cannot be
 * known), 1 otherwise. */
static int report_outcome(int sfd, pid_t pid)
{
	char line[8192];

	if (sfd < 0)
		return 0;
	if (!ckpt_status_read(sfd, line, sizeof(line))) {
		fprintf(stderr, "ckpt: the ckptfs daemon (pid %d) ended without "
			"reporting the outcome of its commit at unmount (it "
			"crashed or was killed): edits made after the last "
			"commit may be lost; see its log\n", (int)pid);
		return 1;
	}
	if (strcmp(line, CKPT_STATUS_OK) == 0)
		return 0;
	fprintf(stderr, "ckpt: %s\n", line);
	return 1;
}

/* Waits until the process behind pidfd (-1: none) has exited. */
static void wait_exit(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	if (pidfd < 0)
		return;
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

/* umount [--force] MNT: connect to the daemon's status socket, commit
 * (fsync), unmount, read the outcome of the daemon's last commit, wait
 * for it to exit. */
static int cmd_umount(struct cli *c, int argc, char **argv)
{
	enum commit_result cr;
	int sfd, pidfd, ret = 1;
	const char *mnt;
	pid_t pid;

	if (argc != 1)
		return -1;
	mnt = argv[0];
	pid = daemon_pid(mnt);
	if (!pid)
		return 1;
	sfd = open_status(mnt, pid);
	if (sfd == -2)
		return 1;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (c->force && force_commit(mnt) != 0)
		goto out;
	cr = commit_mount(mnt);
	if (cr == KEEP_MOUNT)
		goto out;
	if (fusermount_u(mnt, false) != 0) {
		fprintf(stderr, "ckpt: fusermount3 -u %s failed%s\n", mnt,
			cr == COMMITTED ? "; the edits are committed" : "");
		goto out;
	}
	ret = report_outcome(sfd, pid) || cr != COMMITTED;
	wait_exit(pidfd);
out:
	if (sfd >= 0)
		close(sfd);
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}

/* convert's progress line on stderr. */
static void show_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	fprintf(stderr, "\r%llu / %llu MiB (%d%%)",
		(unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20),
		total ? (int)(done * 100 / total) : 100);
}

/* convert IN OUT: IN written again as OUT with the output options. */
static int cmd_convert(struct cli *c, int argc, char **argv)
{
	struct ckpt_tree_opts to = {0};
	struct ckpt_tree *t;
	struct ckpt_error err;
	int r;

	if (argc != 2)
		return -1;
	if (c->decrypt && c->out_key) {
		fprintf(stderr, "ckpt: --decrypt and --out-enc-mode exclude "
			"each other\n");
		return 2;
	}
	to.output = argv[1];
	to.open.key = c->key;
	to.open.skip_crc = c->ignore_crc;
	to.crc = c->no_crc ? CKPT_CRC_DROP
		 : c->crc  ? CKPT_CRC_ADD : CKPT_CRC_KEEP;
	to.one_shot = true;
	to.out_key_policy = c->out_key  ? CKPT_OUT_KEY_NEW
			    : c->decrypt ? CKPT_OUT_KEY_NONE
					 : CKPT_OUT_KEY_SAME;
	to.out_key = c->out_key;
	if (!c->quiet && isatty(2))
		to.progress = show_progress;
	if (ckpt_tree_open(argv[0], &to, &t, &err)) {
		report(&err);
		return 1;
	}
	if (ckpt_tree_read_only(t)) {
		fprintf(stderr, "ckpt: cannot write %s: %s\n", argv[1],
			ckpt_tree_read_only(t));
		ckpt_tree_close(t);
		return 1;
	}
	ckpt_tree_mark_dirty(t);
	r = ckpt_tree_commit(t, &err) ? 1 : 0;
	if (to.progress)
		fputc('\n', stderr);
	if (r)
		report(&err);
	ckpt_tree_close(t);
	return r;
}

/* ckpt COMMAND [OPTIONS] ARGS; the exit status of the command. */
int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *, int, char **);
	} cmds[] = {{"ls", cmd_ls},         {"cat", cmd_cat},
		    {"info", cmd_info},     {"verify", cmd_verify},
		    {"umount", cmd_umount}, {"convert", cmd_convert}};
	enum { O_MODE = 256, O_KEYFILE, O_KEYFD, O_IGNORE_CRC, O_OUT_MODE,
	       O_OUT_KEYFILE, O_OUT_KEYFD, O_DECRYPT, O_CRC, O_NO_CRC,
	       O_FORCE };
	static const struct option longopts[] = {
		{"enc-mode", required_argument, NULL, O_MODE},
		{"keyfile", required_argument, NULL, O_KEYFILE},
		{"keyfd", required_argument, NULL, O_KEYFD},
		{"ignore-crc", no_argument, NULL, O_IGNORE_CRC},
		{"out-enc-mode", required_argument, NULL, O_OUT_MODE},
		{"out-keyfile", required_argument, NULL, O_OUT_KEYFILE},
		{"out-keyfd", required_argument, NULL, O_OUT_KEYFD},
		{"decrypt", no_argument, NULL, O_DECRYPT},
		{"crc", no_argument, NULL, O_CRC},
		{"no-crc", no_argument, NULL, O_NO_CRC},
		{"force", no_argument, NULL, O_FORCE},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	struct cli c = {.keyfd = -1, .out_keyfd = -1};
	int opt, r = 2;
	size_t i;

	if (argc >= 2 && argv[1][0] != '-') { /* COMMAND first */
		argv[0] = argv[1];
		argv++;
		argc--;
	} else if (argc < 2 || (strcmp(argv[1], "-h") &&
				strcmp(argv[1], "--help") &&
				strcmp(argv[1], "-V") &&
				strcmp(argv[1], "--version"))) {
		fputs(usage, stderr);
		return 2;
	}
	while ((opt = getopt_long(argc, argv, "lqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': c.lng = true; break;
		case 'q': c.quiet = true; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("ckpt %s\n", CKPT_VERSION); return 0;
		case O_MODE: c.mode = optarg; break;
		case O_KEYFILE: c.keyfile = optarg; break;
		case O_KEYFD: c.keyfd = atoi(optarg); break;
		case O_IGNORE_CRC: c.ignore_crc = true; break;
		case O_OUT_MODE: c.out_mode = optarg; break;
		case O_OUT_KEYFILE: c.out_keyfile = optarg; break;
		case O_OUT_KEYFD: c.out_keyfd = atoi(optarg); break;
		case O_DECRYPT: c.decrypt = true; break;
		case O_CRC: c.crc = true; break;
		case O_NO_CRC: c.no_crc = true; break;
		case O_FORCE: c.force = true; break;
		default: fputs(usage, stderr); return 2;
		}
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[0], cmds[i].name))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0])) {
		fprintf(stderr, "ckpt: unknown command '%s'\n%s", argv[0],
			usage);
		return 2;
	}
	if (c.force && cmds[i].fn != cmd_umount) {
		fprintf(stderr, "ckpt: --force is an option of 'umount'\n");
		return 2;
	}
	r = load_key(c.mode, c.keyfile, c.keyfd, &c.key);
	if (!r)
		r = load_key(c.out_mode, c.out_keyfile, c.out_keyfd,
			     &c.out_key);
	if (!r) {
		r = cmds[i].fn(&c, argc - optind, argv + optind);
		if (r < 0) {
			fprintf(stderr, "ckpt: wrong arguments for '%s'\n%s",
				cmds[i].name, usage);
			r = 2;
		}
	}
	ckpt_key_free(c.key);
	ckpt_key_free(c.out_key);
	return r;
}
