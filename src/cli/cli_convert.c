/*
 * cli_convert.c - ckpt convert IN OUT: IN written again as OUT,
 * streaming, with another encryption, key or crc trailer (see cli.h).
 *
 * Owns the mapping of the convert options onto a one-shot tree
 * (ckpt_tree_open with output=OUT, then one commit) and the progress
 * line.  Never writes IN; OUT appears complete or not at all (the
 * library's atomic commit).  Single-threaded.
 */
#include <stdio.h>
#include <unistd.h>

#include "ckpt_tree.h"
#include "cli.h"

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
int cmd_convert(struct cli *c, int argc, char **argv)
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
		 : c->crc  ? CKPT_CRC_ADD
			   : CKPT_CRC_KEEP;
	to.one_shot = true;
	to.out_key_policy = c->out_key	 ? CKPT_OUT_KEY_NEW
			    : c->decrypt ? CKPT_OUT_KEY_NONE
					 : CKPT_OUT_KEY_SAME;
	to.out_key = c->out_key;
	if (!c->quiet && isatty(2))
		to.progress = show_progress;
	if (ckpt_tree_open(argv[0], &to, &t, &err)) {
		cli_report(&err);
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
		cli_report(&err);
	ckpt_tree_close(t);
	return r;
}
