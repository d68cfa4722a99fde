/*
 * cli_convert.c - ckpt convert IN OUT: IN written again as OUT,
 * streaming, with another encryption, key or crc trailer, only some of
 * the parameters or other names (cli_select.c; see cli.h).
 *
 * Owns the mapping of the convert options onto a one-shot tree
 * (ckpt_tree_open with output=OUT, then one commit); its progress is
 * progress.c's.  Never writes IN; OUT appears complete or not at all
 * (the library's atomic commit).  Single-threaded but for the library's
 * encryption workers, which report progress one at a time.
 */
#include <stdio.h>
#include <string.h>

#include "ckpt_tree.h"
#include "cli.h"

/* The format of OUT: --format, else OUT's extension, else NULL (IN's). */
static const char *out_format(const struct cli *c, const char *out)
{
	return c->format ? c->format : ckpt_format_for_path(out);
}

/* What a conversion to another format drops, said on stderr: the
 * metadata of a safetensors file that becomes a checkpoint (its Int4
 * markers live on as the dtype Int4). */
static void note_dropped(const char *in, struct ckpt_tree *t)
{
	const struct ckpt_stats *st = ckpt_tree_source_stats(t);
	struct ckpt_file *f;
	size_t kept = 0;

	if (ckpt_tree_has_metadata(t) || !st || !st->header_size)
		return;
	if (ckpt_open(in,
		      &(struct ckpt_open_opts){.skip_crc = true,
					       .format = "safetensors"},
		      &f, NULL))
		return;
	for (size_t i = 0; i < ckpt_meta_count(f); i++)
		kept += ckpt_meta_at(f, i)->marker;
	if (ckpt_meta_count(f) > kept)
		fprintf(stderr,
			"ckpt: note: the ckpt format has no metadata: the "
			"%zu key(s) of %s's __metadata__ are not written\n",
			ckpt_meta_count(f) - kept, in);
	ckpt_close(f);
}

/* convert IN OUT: IN written again as OUT with the output options. */
int cmd_convert(struct cli *c, int argc, char **argv)
{
	struct ckpt_tree_opts to = {0};
	struct ckpt_progress p;
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
	r = cli_select_prepare(&c->sel);
	if (r)
		return r;
	to.include = c->sel.include;
	to.exclude = c->sel.exclude;
	to.output = argv[1];
	to.open.key = c->key;
	to.open.skip_crc = c->ignore_crc;
	to.crc = c->no_crc ? CKPT_CRC_DROP
		 : c->crc  ? CKPT_CRC_ADD
			   : CKPT_CRC_KEEP;
	to.one_shot = true;
	to.no_reflink = c->no_reflink;
	to.out_key_policy = c->out_key	 ? CKPT_OUT_KEY_NEW
			    : c->decrypt ? CKPT_OUT_KEY_NONE
					 : CKPT_OUT_KEY_SAME;
	to.out_key = c->out_key;
	to.open.format = NULL; /* IN by its content */
	to.out_format = out_format(c, argv[1]);
	to.skip_unrepresentable = c->skip_unrepresentable;
	to.warn = cli_warn;
	ckpt_progress_start(&p, c->quiet);
	if (p.on) {
		to.progress = ckpt_progress_cb;
		to.progress_ctx = &p;
	}
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
	if (cli_select_apply(&c->sel, t)) {
		ckpt_tree_close(t);
		return 1;
	}
	note_dropped(argv[0], t);
	ckpt_tree_mark_dirty(t);
	r = ckpt_tree_commit(t, &err) ? 1 : 0;
	ckpt_progress_end(&p);
	if (r)
		cli_report(&err);
	ckpt_tree_close(t);
	return r;
}
