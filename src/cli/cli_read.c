/*
 * cli_read.c - the commands that read a checkpoint without mounting it:
 * ls, cat, info and verify (see cli.h).
 *
 * Owns the text output of those commands (--json: cli_json.c); ls and
 * info show only the parameters --include/--exclude select
 * (cli_select_keep).  Opens the file read-only through ckpt_open with the
 * key and CRC options; never writes a checkpoint and never writes to
 * stdout before every name asked for is known (cat; with --npy, before
 * the .npy header of ckpt_npy.h).  Single-threaded, no
 * locks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_npy.h"
#include "cli.h"

int cli_open(const struct cli *c, const char *path, struct ckpt_file **f)
{
	struct ckpt_open_opts oo = {
		.key = c->key, .skip_crc = c->ignore_crc, .format = c->format};
	struct ckpt_error err;
	char warning[PATH_MAX + 128];

	if (ckpt_open(path, &oo, f, &err) != CKPT_OK) {
		cli_report(&err);
		return 1;
	}
	if (ckpt_keyopt_legacy_warning(ckpt_stats(*f), path, CKPT_FRONT_CLI,
				       warning, sizeof(warning)))
		fprintf(stderr, "ckpt: %s\n", warning);
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
		       map_sub ? t->type_str : ckpt_dtype_name(t->dtype), shape,
		       (unsigned long long)t->size);
	}
	printf("%s%s%s\n", name, sub ? "/" : "", sub ? sub : "");
}

/* ls [-l] FILE. */
int cmd_ls(struct cli *c, int argc, char **argv)
{
	struct ckpt_file *f;
	bool lng = c->lng;

	if (argc != 1)
		return -1;
	if (cli_open(c, argv[0], &f))
		return 1;
	if (c->json) {
		int r = cli_json_ls(c, f);
		ckpt_close(f);
		return fflush(stdout) ? 1 : r;
	}
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (!cli_select_keep(&c->sel, p->name))
			continue;
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

const struct ckpt_tensor *cli_find_tensor(const struct ckpt_file *f,
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

/* Writes n bytes of buf to stdout; 0, or 1 after a message. */
static int put(const char *buf, size_t n)
{
	if (fwrite(buf, 1, n, stdout) == n)
		return 0;
	fprintf(stderr, "ckpt: writing to stdout: %s\n", strerror(errno));
	return 1;
}

int cli_write_tensor(struct ckpt_file *f, const struct ckpt_tensor *t,
		     char *buf, size_t cap)
{
	struct ckpt_error err;
	uint64_t off = 0;

	while (off < t->size) {
		size_t n;
		if (ckpt_tensor_read(f, t, buf, cap, off, &n, &err)) {
			cli_report(&err);
			return 1;
		}
		if (put(buf, n))
			return 1;
		off += (uint64_t)n;
	}
	return 0;
}

int cli_write_npy_header(const struct ckpt_tensor *t, const char *name,
			 char *buf, size_t cap)
{
	struct ckpt_error err;
	size_t n;

	if (ckpt_npy_header_read(t->dtype, t->dims, t->ndims, t->size, buf, cap,
				 0, &n, &err)) {
		fprintf(stderr, "ckpt: %s: %s\n", name, err.msg);
		return 1;
	}
	return put(buf, n);
}

/* cat [--npy] FILE NAME...: every name is looked up before any byte is
 * written, so a typo yields no output rather than a shifted
 * concatenation.  With --npy, one NAME, after its .npy header. */
int cmd_cat(struct cli *cl, int argc, char **argv)
{
	enum {
		CHUNK = 1 << 20
	};
	const struct ckpt_tensor **ts = NULL;
	char **names = argv + 1;
	int n = argc - 1;
	struct ckpt_file *f;
	char *buf = NULL;
	int ret = 1;

	if (n < 1)
		return -1;
	if (cl->npy && n != 1) {
		fprintf(stderr, "ckpt: cat --npy writes one parameter: give "
				"one NAME\n");
		return 2;
	}
	if (cli_open(cl, argv[0], &f))
		return 1;
	ts = calloc((size_t)n, sizeof(*ts));
	buf = malloc(CHUNK);
	if (!ts || !buf) {
		fprintf(stderr, "ckpt: out of memory\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		ts[i] = cli_find_tensor(f, names[i]);
		if (!ts[i]) {
			fprintf(stderr,
				"ckpt: %s: no parameter named '%s' "
				"(see 'ckpt ls %s')\n",
				argv[0], names[i], argv[0]);
			goto out;
		}
	}
	if (cl->npy && cli_write_npy_header(ts[0], names[0], buf, CHUNK))
		goto out;
	for (int i = 0; i < n; i++)
		if (cli_write_tensor(f, ts[i], buf, CHUNK))
			goto out;
	ret = fflush(stdout) ? 1 : 0;
out:
	free(buf);
	free(ts);
	ckpt_close(f);
	return ret;
}

/* Counts the parameters of f that sel selects into n. */
static void count_params(const struct ckpt_file *f,
			 const struct cli_select *sel, struct cli_counts *n)
{
	memset(n, 0, sizeof(*n));
	for (size_t i = 0; i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (!cli_select_keep(sel, p->name))
			continue;
		n->selected++;
		n->data += p->tensor.size;
		for (int k = 0;
		     p->kind == CKPT_PARAM_MAP && k < CKPT_MAP_NTENSORS; k++)
			n->data += p->map[k].size;
		if (p->kind == CKPT_PARAM_MAP)
			n->maps++;
		else
			n->dtype[p->tensor.dtype]++;
		if (p->nslices > 1)
			n->sliced++;
	}
}

/* The lines of info about the encoding: encryption, crc, notes. */
static void print_encoding(const struct ckpt_stats *st)
{
	if (st->enc_mode != CKPT_ENC_NONE)
		printf("encryption:  %s, %llu block(s)%s\n",
		       ckpt_enc_mode_name(st->enc_mode),
		       (unsigned long long)st->enc_blocks,
		       st->enc_legacy ? ", legacy 1.3-1.6 layout "
					"(unauthenticated)"
				      : "");
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
}

/* The lines of info about the metadata: one per key, as KEY=VALUE (the
 * Int4 markers are the dtypes of their tensors, not listed). */
static void print_metadata(const struct ckpt_file *f)
{
	if (!ckpt_has_metadata(f))
		return;
	if (!ckpt_meta_count(f))
		printf("metadata:    (empty)\n");
	for (size_t i = 0; i < ckpt_meta_count(f); i++) {
		const struct ckpt_meta_item *it = ckpt_meta_at(f, i);
		if (!it->marker)
			printf("metadata:    %s=%s\n", it->key, it->value);
		if (it->json)
			printf("note:        the value of %s is not a string: "
			       "Hugging Face's loader refuses this file\n",
			       it->key);
	}
}

/* info FILE: counts, bytes, dtypes, encryption, crc. */
int cmd_info(struct cli *c, int argc, char **argv)
{
	const struct ckpt_stats *st;
	struct ckpt_file *f;
	struct cli_counts n;
	bool sel;

	if (argc != 1)
		return -1;
	if (cli_open(c, argv[0], &f))
		return 1;
	st = ckpt_stats(f);
	count_params(f, &c->sel, &n);
	if (c->json) {
		int r = cli_json_info(c, f, &n);
		ckpt_close(f);
		return fflush(stdout) ? 1 : r;
	}
	sel = c->sel.ninclude || c->sel.nexclude;
	printf("file:        %s\n", ckpt_path(f));
	printf("format:      %s\n", ckpt_format_of(f));
	printf("size:        %llu bytes\n", (unsigned long long)st->disk_size);
	if (!strcmp(ckpt_format_of(f), "safetensors"))
		printf("header:      %llu bytes\n",
		       (unsigned long long)st->header_size);
	if (sel)
		printf("selected:    %llu of %zu parameters (--include, "
		       "--exclude): parameters, data and dtypes count "
		       "these\n",
		       (unsigned long long)n.selected, ckpt_count(f));
	printf("parameters:  %llu (%llu map, %llu sliced)\n",
	       (unsigned long long)n.selected, (unsigned long long)n.maps,
	       (unsigned long long)n.sliced);
	if (!strcmp(ckpt_format_of(f), "ckpt"))
		printf("records:     %llu\n", (unsigned long long)st->records);
	printf("data:        %llu bytes\n",
	       (unsigned long long)(sel ? n.data : st->data_bytes));
	printf("dtypes:     ");
	for (int d = 0; d < CKPT_DT_COUNT; d++)
		if (n.dtype[d])
			printf(" %s x%llu", ckpt_dtype_name((ckpt_dtype)d),
			       (unsigned long long)n.dtype[d]);
	printf("%s\n", n.data || n.selected ? "" : " none");
	print_encoding(st);
	print_metadata(f);
	ckpt_close(f);
	return fflush(stdout) ? 1 : 0;
}

/* verify FILE: exit 0 only if structure, crc and authentication hold. */
int cmd_verify(struct cli *c, int argc, char **argv)
{
	const struct ckpt_stats *st;
	struct ckpt_file *f;

	if (argc != 1)
		return -1;
	c->ignore_crc = false; /* verify always checks it */
	if (cli_open(c, argv[0], &f))
		return 1;
	st = ckpt_stats(f);
	printf("%s: OK: %zu parameter%s, %llu data bytes, crc %s%s%s\n",
	       ckpt_path(f), ckpt_count(f), ckpt_count(f) == 1 ? "" : "s",
	       (unsigned long long)st->data_bytes,
	       st->has_crc ? "valid" : "absent",
	       st->enc_mode == CKPT_ENC_NONE ? "" : ", decrypted with ",
	       st->enc_mode == CKPT_ENC_NONE ? ""
	       : st->enc_mode == CKPT_ENC_AES_GCM && !st->enc_legacy
		       ? "AES-GCM, every block authenticated"
		       : ckpt_enc_mode_name(st->enc_mode));
	ckpt_close(f);
	return 0;
}
