/*
 * ckpt_cli.c - ckpt, the FUSE-free command-line tool on libckpt: the
 * command line, the dispatch and the usage text.  The commands are in
 * cli_read.c, cli_umount.c, cli_commit.c, cli_convert.c, cli_diff.c and
 * cli_edit.c (see cli.h).
 *
 *   ckpt ls [-l] FILE        parameter names (with -l: dtype, shape, bytes;
 *                            --json: a document with the extents)
 *   ckpt cat FILE NAME...    raw bytes of parameters to stdout, in order
 *                            (--npy: one as a .npy file)
 *   ckpt info FILE           counts, bytes, dtypes, crc
 *   ckpt verify FILE         structure and crc; exit 0 only when valid
 *   ckpt commit MOUNTPOINT   commit, wait until durable, stay mounted
 *   ckpt umount MOUNTPOINT   commit, unmount, wait for the daemon
 *   ckpt convert IN OUT      re-encode: encrypt, decrypt, re-key, crc;
 *                            select and rename parameters
 *   ckpt diff A B            what differs between two checkpoints
 *   ckpt rm|mv|set|put|edit  edit a checkpoint without a mount, one
 *                            commit per invocation
 *   ckpt get FILE NAME       raw bytes of one parameter to stdout (or
 *                            --npy: as a .npy file)
 *
 * Exit status: 0 success, 1 the checkpoint or an operation failed, 2 usage
 * (diff: 0 same, 1 different, 2 trouble).
 * Owns the options (getopt_long, shared by every command) and the keys
 * they name, loaded once before the command runs and wiped after it.
 * Keys are never taken from the command line itself.  Single-threaded.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_common.h"
#include "cli.h"

static const char usage[] =
	"usage: ckpt COMMAND [OPTIONS] ARGS\n"
	"\n"
	"Inspect and convert MindSpore checkpoints without mounting: .ckpt\n"
	"files and safetensors files (the format is found from the content).\n"
	"\n"
	"commands:\n"
	"  ls [-l|--json] FILE\n"
	"                     list parameters, one per line, named as in the\n"
	"                     mount ('/' shown as %2F, '%' as %25; map values\n"
	"                     as NAME/keys, NAME/values, NAME/status);\n"
	"                     -l adds dtype, shape and byte count; --json\n"
	"                     writes one JSON document instead: name, dtype,\n"
	"                     shape, bytes and file offsets of each parameter\n"
	"                     (schema: docs/json.md)\n"
	"  cat FILE NAME...   write the raw bytes of each parameter NAME to\n"
	"                     stdout, one after another; if any NAME is\n"
	"                     missing, nothing is written\n"
	"  cat --npy FILE NAME\n"
	"                     write parameter NAME as a .npy file (the header\n"
	"                     np.save writes, then the bytes): np.load reads\n"
	"                     it; dtypes numpy lacks get a stand-in dtype\n"
	"                     ('|V2' for BFloat16, [('int4', '|i1')], ...)\n"
	"  info [--json] FILE summary: counts, bytes, dtypes, crc, encryption,\n"
	"                     metadata; --json: as one JSON document\n"
	"  verify FILE        check structure, crc and (AES-GCM) authenticity;\n"
	"                     exit 0 only if valid\n"
	"  commit [-q] MOUNTPOINT\n"
	"                     commit the edits of a ckptfs mount and wait until\n"
	"                     the new checkpoint is durable; the mount stays;\n"
	"                     if the commit fails, the reason is printed and\n"
	"                     the edits stay in the mount (exit 1)\n"
	"  umount [-q] [--force] MOUNTPOINT\n"
	"                     commit the edits of a ckptfs mount, unmount it\n"
	"                     and wait until the daemon has finished; if the\n"
	"                     commit fails, nothing is unmounted and the\n"
	"                     reason is printed, unless the checkpoint was\n"
	"                     replaced or modified underneath: then the edits\n"
	"                     are saved as a recovery file beside it (its path\n"
	"                     is printed); --force instead commits over\n"
	"                     whatever file the path holds now\n"
	"  convert IN OUT     write IN again as OUT, streaming: in the other\n"
	"                     format (ckpt <-> safetensors, as MindSpore's\n"
	"                     ckpt_to_safetensors and safetensors_to_ckpt do),\n"
	"                     encrypt, decrypt, re-key, change mode, add or\n"
	"                     drop the crc,\n"
	"                     keep only some parameters, rename them\n"
	"  diff A B           what differs between two checkpoints (either\n"
	"                     format): parameters only in A or only in B,\n"
	"                     dtype or shape changes, and for the others how\n"
	"                     many elements differ, with the largest absolute\n"
	"                     and relative difference; exit 0 same,\n"
	"                     1 different, 2 trouble\n"
	"  get [--npy] FILE NAME\n"
	"                     write the raw bytes of parameter NAME to stdout\n"
	"                     (--npy: as a .npy file, as cat --npy)\n"
	"  rm FILE NAME...    remove the parameters (all of them, or none)\n"
	"  mv [--force] FILE OLD NEW\n"
	"                     rename OLD, in its place; an existing NEW is\n"
	"                     replaced only with --force\n"
	"  set FILE NAME [--dtype T] [--shape S]\n"
	"                     retype or reshape (at least one of them), as\n"
	"                     setfattr user.dtype / user.shape on a mount\n"
	"  put FILE NAME [--dtype T] [--shape S | --npy] < DATA\n"
	"                     replace the bytes of NAME with standard input,\n"
	"                     or add NAME at the end (default UInt8, 1-D);\n"
	"                     --npy: DATA is a .npy file (np.save's), whose\n"
	"                     header gives the dtype and shape (docs/npy.md)\n"
	"  edit [--force] FILE < LIST\n"
	"                     the edits of LIST, one a line, in one commit:\n"
	"                     rm NAME | mv OLD NEW | set NAME [dtype=T]\n"
	"                     [shape=S] | put NAME PATH [dtype=T] [shape=S]\n"
	"                     | put NAME PATH npy;\n"
	"                     '#' comments; %XX in names and paths (%20: a\n"
	"                     space); --force lets mv replace\n"
	"\n"
	"editing without a mount (rm, mv, set, put, edit): one atomic commit\n"
	"per command, byte for byte what the same edits through a mount give;\n"
	"on any error nothing is written; a mounted FILE is refused.  NAMEs are\n"
	"written as ls shows them.  The key options give FILE's key (the commit\n"
	"keeps it); --crc / --no-crc add / drop the crc (default: as FILE has\n"
	"it).  Where FILE's file system shares blocks (XFS, Btrfs, ...) the\n"
	"commit starts as a clone of FILE and writes only what changed;\n"
	"--no-reflink (also for convert) writes every byte instead.\n"
	"\n"
	"key options (ls, cat, get, info, verify, convert and the editing\n"
	"commands: the key of FILE or IN; put and edit: not --keyfile -):\n"
	"  --enc-mode MODE    AES-GCM, AES-CBC or SM4-CBC\n"
	"  --keyfile PATH     the raw key bytes (MindSpore's enc_key); '-' reads\n"
	"                     them from standard input\n"
	"  --keyfd N          read the key from inherited descriptor N (not\n"
	"                     with --keyfile)\n"
	"  --ignore-crc       open a file whose crc_num (trailer, or safetensors\n"
	"                     metadata) does not match (not for rm, mv, set,\n"
	"                     put, edit: their commit would write a fresh crc\n"
	"                     over the damage)\n"
	"  --format FORMAT    ckpt or safetensors: read FILE as this format\n"
	"                     (ls, cat, info, verify); for convert, the format\n"
	"                     of OUT (default: from OUT's extension .ckpt or\n"
	"                     .safetensors, else IN's format)\n"
	"convert options (default: same encryption and crc as IN):\n"
	"  --out-enc-mode MODE, --out-keyfile PATH, --out-keyfd N\n"
	"                     encrypt OUT with this mode and key\n"
	"  --decrypt          write OUT in plain\n"
	"  --crc / --no-crc   add / drop the crc_num (trailer, or safetensors\n"
	"                     metadata)\n"
	"  --skip-unrepresentable\n"
	"                     leave out, with a warning, what OUT's format\n"
	"                     cannot hold (str and map parameters in\n"
	"                     safetensors) instead of failing\n"
	"  --rename s/REGEX/REPL/[g]\n"
	"                     rename parameters with a sed substitution (POSIX\n"
	"                     extended REGEX; & and \\1..\\9 in REPL; g: every\n"
	"                     match; any delimiter for '/'); repeatable,\n"
	"                     applied in order\n"
	"  --name-map FILE.json\n"
	"                     rename by a JSON object {\"old\": \"new\", ...}\n"
	"                     (MindSpore's name_map), before --rename; a name\n"
	"                     two parameters would share is an error\n"
	"selection (ls, info, convert):\n"
	"  --include GLOB     only the parameters whose stored names match GLOB\n"
	"                     (fnmatch(3): '*' matches '.' and '/' too);\n"
	"                     repeatable: any of them\n"
	"  --exclude GLOB     leave out those that match GLOB (repeatable; wins\n"
	"                     over --include), e.g. convert --exclude\n"
	"                     'moments.*' keeps a network without its optimizer\n"
	"diff options:\n"
	"  --param NAME       compare only parameter NAME (as ls shows it);\n"
	"                     repeatable\n"
	"  --atol X, --rtol Y elements a of A and b of B are equal when\n"
	"                     |a - b| <= X + Y * |b| (numpy.isclose; default\n"
	"                     0 and 0: exactly equal values)\n"
	"  --equal-nan        NaN equals NaN (default: NaN differs from\n"
	"                     everything, as in numpy)\n"
	"  --json             one JSON document on stdout instead of text\n"
	"                     (also of ls and info)\n"
	"  -q, --quiet        no output: only the exit status\n"
	"  the key options give A's key; --out-enc-mode, --out-keyfile,\n"
	"  --out-keyfd give B's (default: A's)\n"
	"progress (commit, umount, convert, editing):\n"
	"  -q, --quiet        no progress display; without it, progress (bytes\n"
	"                     written of total, rate, time left) is shown on\n"
	"                     stderr when it is a terminal, or always with\n"
	"                     CKPT_PROGRESS=1 in the environment\n"
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

void cli_report(const struct ckpt_error *err)
{
	char text[1024];

	fprintf(stderr, "ckpt: %s\n",
		ckpt_error_text(err, CKPT_FRONT_CLI, text, sizeof(text)));
}

void cli_warn(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "ckpt: warning: %s\n", msg);
}

/* Loads the key o names into *key (NULL if none): 0, or the exit status
 * after a message (2 if the options are wrong). */
static int load_key(const struct ckpt_keyopt *o, struct ckpt_key **key)
{
	char msg[1024];

	switch (ckpt_keyopt_load(o, CKPT_FRONT_CLI, key, msg, sizeof(msg))) {
	case CKPT_KEYOPT_OK:
		return 0;
	case CKPT_KEYOPT_USAGE:
		fprintf(stderr, "ckpt: %s\n", msg);
		return 2;
	case CKPT_KEYOPT_FAILED:
		break;
	}
	fprintf(stderr, "ckpt: %s\n", msg);
	return 1;
}

enum {
	O_MODE = 256,
	O_KEYFILE,
	O_KEYFD,
	O_IGNORE_CRC,
	O_OUT_MODE,
	O_OUT_KEYFILE,
	O_OUT_KEYFD,
	O_DECRYPT,
	O_CRC,
	O_NO_CRC,
	O_NO_REFLINK,
	O_FORCE,
	O_FORMAT,
	O_SKIP_UNREP,
	O_PARAM,
	O_ATOL,
	O_RTOL,
	O_EQUAL_NAN,
	O_JSON,
	O_DTYPE,
	O_SHAPE,
	O_NPY,
	O_SELECT /* + enum cli_select_opt: the options of cli_select.c */
};

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
	{"no-reflink", no_argument, NULL, O_NO_REFLINK},
	{"force", no_argument, NULL, O_FORCE},
	{"format", required_argument, NULL, O_FORMAT},
	{"skip-unrepresentable", no_argument, NULL, O_SKIP_UNREP},
	{"include", required_argument, NULL, O_SELECT + CLI_SEL_INCLUDE},
	{"exclude", required_argument, NULL, O_SELECT + CLI_SEL_EXCLUDE},
	{"rename", required_argument, NULL, O_SELECT + CLI_SEL_RENAME},
	{"name-map", required_argument, NULL, O_SELECT + CLI_SEL_NAME_MAP},
	{"param", required_argument, NULL, O_PARAM},
	{"atol", required_argument, NULL, O_ATOL},
	{"rtol", required_argument, NULL, O_RTOL},
	{"equal-nan", no_argument, NULL, O_EQUAL_NAN},
	{"json", no_argument, NULL, O_JSON},
	{"dtype", required_argument, NULL, O_DTYPE},
	{"shape", required_argument, NULL, O_SHAPE},
	{"npy", no_argument, NULL, O_NPY},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0}};

/* A tolerance: a finite number >= 0 in *v; 0, or 2 after a message. */
static int tolerance(const char *opt, const char *arg, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(*v) || *v < 0) {
		fprintf(stderr,
			"ckpt: %s takes a number >= 0 (like 1e-5), not '%s'\n",
			opt, arg);
		return 2;
	}
	return 0;
}

/* Records an option of diff (--json also of ls and info); 0, or the exit
 * status after a message. */
static int diff_option(struct cli *c, int opt, const char *arg)
{
	const char **p;

	switch (opt) {
	case O_PARAM:
		p = realloc(c->params, (c->nparams + 1) * sizeof(*p));
		if (!p) {
			fprintf(stderr, "ckpt: out of memory\n");
			return 1;
		}
		p[c->nparams++] = arg;
		c->params = p;
		return 0;
	case O_ATOL:
		return tolerance("--atol", arg, &c->atol);
	case O_RTOL:
		return tolerance("--rtol", arg, &c->rtol);
	case O_EQUAL_NAN:
		c->equal_nan = true;
		return 0;
	default: /* O_JSON */
		c->json = true;
		return 0;
	}
}

/* Reads the options (getopt_long: they may come anywhere) into c.  -1 to
 * go on with the command, else the exit status (help, version, or bad
 * usage after the usage text). */
static int parse_options(struct cli *c, int argc, char **argv)
{
	int opt, r;

	while ((opt = getopt_long(argc, argv, "lqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			c->lng = true;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			ckpt_print_version("ckpt", NULL);
			return 0;
		case O_MODE:
			c->in.mode = optarg;
			break;
		case O_KEYFILE:
			c->in.keyfile = optarg;
			break;
		case O_KEYFD:
			c->in.keyfd = atoi(optarg);
			break;
		case O_IGNORE_CRC:
			c->ignore_crc = true;
			break;
		case O_OUT_MODE:
			c->out.mode = optarg;
			break;
		case O_OUT_KEYFILE:
			c->out.keyfile = optarg;
			break;
		case O_OUT_KEYFD:
			c->out.keyfd = atoi(optarg);
			break;
		case O_DECRYPT:
			c->decrypt = true;
			break;
		case O_CRC:
			c->crc = true;
			break;
		case O_NO_CRC:
			c->no_crc = true;
			break;
		case O_NO_REFLINK:
			c->no_reflink = true;
			break;
		case O_FORCE:
			c->force = true;
			break;
		case O_FORMAT:
			if (!ckpt_format_known(optarg, strlen(optarg))) {
				fprintf(stderr,
					"ckpt: unknown format '%s' (known: "
					"%s)\n",
					optarg, ckpt_format_names());
				return 2;
			}
			c->format = optarg;
			break;
		case O_SKIP_UNREP:
			c->skip_unrepresentable = true;
			break;
		case O_DTYPE:
			c->dtype = optarg;
			break;
		case O_SHAPE:
			c->shape = optarg;
			break;
		case O_NPY:
			c->npy = true;
			break;
		case O_PARAM:
		case O_ATOL:
		case O_RTOL:
		case O_EQUAL_NAN:
		case O_JSON:
			r = diff_option(c, opt, optarg);
			if (r)
				return r;
			break;
		case O_SELECT + CLI_SEL_INCLUDE:
		case O_SELECT + CLI_SEL_EXCLUDE:
		case O_SELECT + CLI_SEL_RENAME:
		case O_SELECT + CLI_SEL_NAME_MAP:
			r = cli_select_add(
				&c->sel, (enum cli_select_opt)(opt - O_SELECT),
				optarg);
			if (r)
				return r;
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	return -1;
}

/* The commands, by name. */
static const struct command {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} commands[] = {{"ls", cmd_ls},		  {"cat", cmd_cat},
		{"info", cmd_info},	  {"verify", cmd_verify},
		{"umount", cmd_umount},	  {"commit", cmd_commit},
		{"convert", cmd_convert}, {"diff", cmd_diff},
		{"rm", cmd_rm},		  {"mv", cmd_mv},
		{"set", cmd_set},	  {"put", cmd_put},
		{"edit", cmd_edit},	  {"get", cmd_get}};

/* The command called name, or NULL after a message. */
static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	fprintf(stderr, "ckpt: unknown command '%s'\n%s", name, usage);
	return NULL;
}

/* Loads the keys, runs cmd with the arguments after the options and
 * wipes the keys; the exit status. */
static int run(const struct command *cmd, struct cli *c, int argc, char **argv)
{
	int r = load_key(&c->in, &c->key);

	if (!r)
		r = load_key(&c->out, &c->out_key);
	if (r == 1 && cmd->fn == cmd_diff)
		r = 2; /* for diff, 1 means "different" */
	if (!r) {
		r = cmd->fn(c, argc, argv);
		if (r < 0) {
			fprintf(stderr, "ckpt: wrong arguments for '%s'\n%s",
				cmd->name, usage);
			r = 2;
		}
	}
	ckpt_key_free(c->key);
	ckpt_key_free(c->out_key);
	return r;
}

/* 0 if the options of the edit commands fit cmd, else 2 after a
 * message. */
static int check_edit_options(const struct cli *c, const struct command *cmd)
{
	bool reads_stdin = cmd->fn == cmd_put || cmd->fn == cmd_edit;

	if (c->force && cmd->fn != cmd_umount && cmd->fn != cmd_mv &&
	    cmd->fn != cmd_edit) {
		fprintf(stderr, "ckpt: --force is an option of 'umount', "
				"'mv' and 'edit'\n");
		return 2;
	}
	if ((c->dtype || c->shape) && cmd->fn != cmd_set &&
	    cmd->fn != cmd_put) {
		fprintf(stderr, "ckpt: --dtype and --shape are options of "
				"'set' and 'put'\n");
		return 2;
	}
	/* A commit writes a fresh crc: over data that failed its check, it
	 * would hide the damage (a mount with -o ignore_crc is read-only). */
	if (c->ignore_crc && (reads_stdin || cmd->fn == cmd_rm ||
			      cmd->fn == cmd_mv || cmd->fn == cmd_set)) {
		fprintf(stderr,
			"ckpt: '%s' commits a new checkpoint with a fresh crc, "
			"which would hide the damage --ignore-crc lets through: "
			"copy the data out with 'ckpt get --ignore-crc' or "
			"'ckpt convert --ignore-crc' and edit the copy\n",
			cmd->name);
		return 2;
	}
	if (reads_stdin && c->in.keyfile && !strcmp(c->in.keyfile, "-")) {
		fprintf(stderr,
			"ckpt: '%s' reads standard input: give the key with "
			"--keyfile PATH or --keyfd N instead of --keyfile -\n",
			cmd->name);
		return 2;
	}
	return 0;
}

/* The command line after the program name, into c; the exit status. */
static int dispatch(struct cli *c, int argc, char **argv)
{
	const struct command *cmd;
	int r;

	if (argc >= 2 && argv[1][0] != '-') { /* COMMAND first */
		argv[0] = argv[1];
		argv++;
		argc--;
	} else if (argc < 2 ||
		   (strcmp(argv[1], "-h") && strcmp(argv[1], "--help") &&
		    strcmp(argv[1], "-V") && strcmp(argv[1], "--version"))) {
		fputs(usage, stderr);
		return 2;
	}
	r = parse_options(c, argc, argv);
	if (r >= 0)
		return r;
	cmd = find_command(argv[0]);
	if (!cmd)
		return 2;
	if (check_edit_options(c, cmd))
		return 2;
	if ((c->nparams || c->atol != 0 || c->rtol != 0 || c->equal_nan) &&
	    cmd->fn != cmd_diff) {
		fprintf(stderr, "ckpt: --param, --atol, --rtol and --equal-nan "
				"are options of 'diff'\n");
		return 2;
	}
	if (c->json && cmd->fn != cmd_diff && cmd->fn != cmd_ls &&
	    cmd->fn != cmd_info) {
		fprintf(stderr, "ckpt: --json is an option of 'ls', 'info' and "
				"'diff'\n");
		return 2;
	}
	if (c->npy && cmd->fn != cmd_cat && cmd->fn != cmd_get &&
	    cmd->fn != cmd_put) {
		fprintf(stderr, "ckpt: --npy is an option of 'cat', 'get' and "
				"'put'\n");
		return 2;
	}
	if (c->npy && (c->dtype || c->shape)) {
		fprintf(stderr,
			"ckpt: put --npy takes the dtype and shape from "
			"the .npy header: no --dtype or --shape\n");
		return 2;
	}
	if (cli_select_check(&c->sel, cmd->name))
		return 2;
	return run(cmd, c, argc - optind, argv + optind);
}

/* ckpt COMMAND [OPTIONS] ARGS; the exit status of the command. */
int main(int argc, char **argv)
{
	struct cli c = {.in.keyfd = -1, .out.keyfd = -1};
	int r = dispatch(&c, argc, argv);

	cli_select_free(&c.sel);
	free(c.params);
	return r;
}
