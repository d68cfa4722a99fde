/*
 * ckpt_batch.c - the ckpt command line, many times in one process: a test
 * driver for suites that judge thousands of damaged files (test_corrupt),
 * where starting one process per case (slow under ASan) is what costs.
 *
 * The ckpt sources are compiled into this program with their main renamed
 * ckpt_cli_main (tests/CMakeLists.txt), so every request runs exactly the
 * code of 'ckpt ARGS...': option parsing, the command, its messages.
 *
 * Protocol, on the descriptors the driver was started with:
 *   request (stdin):  "N\n", then N arguments, each "LEN\n" + LEN bytes
 *   reply (stdout):   "RC OUTLEN ERRLEN\n" + the command's stdout bytes
 *                     + its stderr bytes
 * End of input ends the driver (exit 0).  During a request, the command's
 * stdin is /dev/null and its stdout and stderr are memory files.  A
 * command that crashes kills the driver: the caller sees the signal and
 * starts a new one (tests/integration/batch.py).  Not for commands that
 * read a key from stdin or fork (umount).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#undef main
int ckpt_cli_main(int argc, char **argv);

/* As many arguments as execve(2) could pass (a cat of every parameter of
 * a 10,000-parameter file is one request). */
#define MAX_ARGS (1L << 20)

/* Reads a decimal number ended by '\n' from in; -1 at end of input. */
static long read_count(FILE *in)
{
	long n;

	if (fscanf(in, "%ld", &n) != 1 || fgetc(in) != '\n' || n < 0)
		return -1;
	return n;
}

/* Reads one request into a NULL-ended argv (argv[0] = "ckpt"); its argc,
 * or -1 at end of input (or a malformed request). */
static int read_request(FILE *in, char ***argvp)
{
	long n = read_count(in);
	char **argv;

	if (n < 0 || n > MAX_ARGS)
		return -1;
	argv = calloc((size_t)n + 2, sizeof(*argv));
	if (!argv)
		return -1;
	argv[0] = strdup("ckpt");
	for (long i = 1; argv[0] && i <= n; i++) {
		long len = read_count(in);
		if (len < 0 || !(argv[i] = malloc((size_t)len + 1)) ||
		    fread(argv[i], 1, (size_t)len, in) != (size_t)len)
			goto fail;
		argv[i][len] = '\0';
	}
	if (!argv[0])
		goto fail;
	*argvp = argv;
	return (int)n + 1;
fail:
	for (long i = 0; i <= n; i++)
		free(argv[i]);
	free(argv);
	return -1;
}

/* Copies the memory file fd (from its start) to out. */
static int copy_out(int fd, FILE *out)
{
	char buf[65536];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, out) != (size_t)n)
			return -1;
	return n < 0 ? -1 : 0;
}

/* Runs ckpt_cli_main(argc, argv) with stdout and stderr in memory files
 * and writes the reply to out; 0, or -1 if the driver cannot go on.  The
 * command gets a copy of argv (main may move its pointers). */
static int serve(int argc, char **argv, FILE *out)
{
	int ofd = memfd_create("out", 0), efd = memfd_create("err", 0);
	int saved_out = dup(1), saved_err = dup(2), rc, ret = -1;
	char **args = calloc((size_t)argc + 1, sizeof(*args));

	if (!args || ofd < 0 || efd < 0 || saved_out < 0 || saved_err < 0 ||
	    dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
		goto out;
	memcpy(args, argv, (size_t)argc * sizeof(*args));
	optind = 0; /* getopt_long starts afresh */
	rc = ckpt_cli_main(argc, args);
	fflush(stdout);
	fflush(stderr);
	if (dup2(saved_out, 1) < 0 || dup2(saved_err, 2) < 0)
		goto out;
	fprintf(out, "%d %lld %lld\n", rc, (long long)lseek(ofd, 0, SEEK_END),
		(long long)lseek(efd, 0, SEEK_END));
	if (copy_out(ofd, out) || copy_out(efd, out) || fflush(out))
		goto out;
	ret = 0;
out:
	free(args);
	for (int i = 0, fds[] = {ofd, efd, saved_out, saved_err}; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

/* Serves requests until the end of input; 0, or 1 if the driver broke. */
int main(void)
{
	int in_fd = dup(0), out_fd = dup(1),
	    null_fd = open("/dev/null", O_RDONLY);
	FILE *in = in_fd < 0 ? NULL : fdopen(in_fd, "rb");
	FILE *out = out_fd < 0 ? NULL : fdopen(out_fd, "wb");
	char **argv;
	int argc, ret = 1;

	if (!in || !out || null_fd < 0 || dup2(null_fd, 0) < 0) {
		perror("ckpt_batch");
		return 1;
	}
	close(null_fd);
	while ((argc = read_request(in, &argv)) > 0) {
		int r = serve(argc, argv, out);
		for (int i = 0; i < argc; i++)
			free(argv[i]);
		free(argv);
		if (r)
			goto out;
	}
	ret = feof(in) ? 0 : 1;
out:
	fclose(in);
	fclose(out);
	return ret;
}
