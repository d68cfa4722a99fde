/*
 * tree_open.c - opening a tree: the places it may write, the pinned and
 * locked checkpoint, the entries; closing it; what it tells about itself.
 *
 * Every path is resolved here, once, into directory descriptors (pin.h):
 * the checkpoint's directory, the target's, the staging directory and
 * $TMPDIR.  Nothing later opens a path by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tree/tree.h"

static const char no_memory[] = "out of memory";

static void note_duplicates(struct ckpt_tree *t, const char *path);
static void note_metadata(struct ckpt_tree *t, const char *path);

/* Opens $TMPDIR (or /tmp) for staging and recovery files that do not fit
 * beside the target; -1 if there is none. */
static int open_tmpdir(struct ckpt_tree *t)
{
	const char *tmp = getenv("TMPDIR");

	t->tmp_path = realpath(tmp && *tmp ? tmp : "/tmp", NULL);
	return t->tmp_path
		       ? open(t->tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
		       : -1;
}

static ckpt_err open_places(struct ckpt_tree *t, const char *path,
			    const struct ckpt_tree_opts *opts,
			    struct ckpt_error *err)
{
	const char *sdir = opts->staging_dir;
	ckpt_err e = ckpt_place_open(path, &t->src_pl, err);

	if (!e)
		e = opts->output
			    ? ckpt_place_open(opts->output, &t->tgt_pl, err)
		    : ckpt_place_dup(&t->src_pl, &t->tgt_pl)
			    ? ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory)
			    : CKPT_OK;
	if (e)
		return e;
	t->tmp_dirfd = open_tmpdir(t);
	t->staging_fixed = sdir != NULL;
	t->stage_dirfd = sdir ? open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			      : fcntl(t->tgt_pl.dirfd, F_DUPFD_CLOEXEC, 0);
	t->staging_dir = sdir ? realpath(sdir, NULL) : NULL;
	if (t->stage_dirfd < 0 || (sdir && !t->staging_dir))
		return ckpt_fail(err, CKPT_ERR_IO, 0,
				 "%s: cannot open the staging directory: %s",
				 sdir ? sdir : t->tgt_pl.path, strerror(errno));
	if (!sdir)
		t->staging_dir = strdup(t->tgt_pl.path);
	return t->staging_dir ? CKPT_OK
			      : ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
}

/* Opens the checkpoint itself (never through a symlink) and scans it; the
 * target, when it is the checkpoint, is pinned to what was scanned. */
static ckpt_err open_source(struct ckpt_tree *t, const char *path,
			    const struct ckpt_tree_opts *opts,
			    struct ckpt_error *err)
{
	int fd = openat(t->src_pl.dirfd, t->src_pl.base,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	ckpt_err e;

	if (fd < 0 && errno == ENOENT && opts->create) {
		t->dirty = true; /* -o create: the empty file is written */
		t->base_mtime_ns = ckpt_now_ns();
		return CKPT_OK;
	}
	if (fd < 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: cannot open: %s",
				 path,
				 errno == ELOOP ? "it is a symbolic link"
						: strerror(errno));
	if (fstat(fd, &st) < 0) {
		e = ckpt_fail(err, CKPT_ERR_IO, 0, "%s: %s", path,
			      strerror(errno));
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) { /* a FIFO would have blocked us */
		close(fd);
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "%s: not a regular file", path);
	}
	t->src_mode = st.st_mode;
	t->src_uid = st.st_uid;
	t->src_gid = st.st_gid;
	if (!opts->output) {
		t->pin_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (t->pin_fd < 0) {
			close(fd);
			return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: %s", path,
					 strerror(errno));
		}
		ckpt_ident_of(&st, &t->pin);
		t->pin_mode = st.st_mode;
		t->pin_uid = st.st_uid;
		t->pin_gid = st.st_gid;
	}
	e = ckpt_open_file(fd, path, &opts->open, &t->base, err);
	if (e)
		return e;
	t->base_mtime_ns = ckpt_ts_ns(&st.st_mtim);
	note_duplicates(t, path);
	note_metadata(t, path);
	return CKPT_OK;
}

/* With -o output: pins the file the output names now, if any. */
static ckpt_err pin_output(struct ckpt_tree *t, struct ckpt_error *err)
{
	struct stat st;
	int fd = openat(t->tgt_pl.dirfd, t->tgt_pl.base,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT)
		return CKPT_OK; /* the first commit creates it */
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return ckpt_fail(err, CKPT_ERR_IO, 0, "%s: cannot open: %s",
				 t->tgt_pl.path,
				 fd < 0 ? strerror(errno)
					: "not a regular file");
	}
	t->pin_fd = fd;
	ckpt_ident_of(&st, &t->pin);
	t->pin_mode = st.st_mode;
	t->pin_uid = st.st_uid;
	t->pin_gid = st.st_gid;
	return CKPT_OK;
}

/* The entries of the checkpoint's parameters, in one mapping (one fault
 * per huge page rather than one per 4 KiB: touching fresh memory is the
 * cost of opening a million parameters); NULL: they are malloc'd. */
static struct entry *entry_block(struct ckpt_tree *t, size_t n)
{
	size_t len = n * sizeof(struct entry);
	void *p;

	if (len < (2u << 20))
		return NULL; /* small: malloc is as good */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	madvise(p, len, MADV_HUGEPAGE); /* a hint only */
#endif
	t->entry_block = p;
	t->entry_block_len = len;
	return p;
}

static ckpt_err load_entries(struct ckpt_tree *t, struct ckpt_error *err)
{
	size_t n = t->base ? ckpt_count(t->base) : 0;
	struct entry *block = entry_block(t, n);

	ckpt_tree_reserve(t, n);
	for (size_t i = 0; i < n; i++) {
		const struct ckpt_param *p = ckpt_param_at(t->base, i);
		struct entry *en =
			ckpt_entry_new(t, block ? &block[i] : NULL, err);
		if (!en)
			return CKPT_ERR_NOMEM;
		ckpt_entry_bind(en, p, t->base); /* borrows name and dims */
		en->mtime_ns = t->base_mtime_ns;
		if (ckpt_entry_link(t, en, err))
			return CKPT_ERR_NOMEM;
	}
	return CKPT_OK;
}

/* Why the target cannot be written, or NULL.  A file or directory without
 * any write permission bit is treated as read-only even for root. */
static const char *why_read_only(struct ckpt_tree *t, bool output)
{
	const char *slash = strrchr(t->tgt_pl.path, '/');
	struct stat st;

	if (fstat(t->tgt_pl.dirfd, &st) != 0 ||
	    faccessat(t->tgt_pl.dirfd, ".", W_OK, AT_EACCESS) != 0 ||
	    !(st.st_mode & 0222)) {
		snprintf(t->ro_buf, sizeof(t->ro_buf),
			 "the directory of the %s, %.*s, is not writable",
			 output ? "output" : "checkpoint",
			 slash && slash != t->tgt_pl.path
				 ? (int)(slash - t->tgt_pl.path)
				 : 1,
			 t->tgt_pl.path);
		return t->ro_buf;
	}
	if (t->pin_fd >= 0 &&
	    (!(t->pin_mode & 0222) ||
	     faccessat(t->tgt_pl.dirfd, t->tgt_pl.base, W_OK, AT_EACCESS)))
		return output ? "the output file is not writable (chmod u+w "
				"to replace it)"
			      : "the file is not writable (chmod u+w to edit "
				"it)";
	return NULL;
}

/* A writable tree holds the write lock on the file it will replace; the
 * descriptor pinned so far is read-only, so the target is opened again
 * for writing and must still be the same file. */
static ckpt_err lock_target(struct ckpt_tree *t, struct ckpt_error *err)
{
	int fd = openat(t->tgt_pl.dirfd, t->tgt_pl.base,
			O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	ckpt_err e;

	if (fd < 0 || fstat(fd, &st) < 0 || !ckpt_ident_same(&t->pin, &st)) {
		if (fd >= 0)
			close(fd);
		return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
				 "%s changed while it was being opened; try "
				 "again",
				 t->tgt_pl.path);
	}
	e = ckpt_lock_writer(fd, t->tgt_pl.path, err);
	if (e) {
		close(fd);
		return e;
	}
	close(t->pin_fd);
	t->pin_fd = fd;
	return CKPT_OK;
}

static void init(struct ckpt_tree *t, const struct ckpt_tree_opts *opts)
{
	pthread_rwlock_init(&t->lock, NULL);
	t->src_pl.dirfd = t->tgt_pl.dirfd = -1;
	t->stage_dirfd = t->tmp_dirfd = t->pin_fd = t->replaced_fd = -1;
	t->open_opts = opts->open;
	t->crc = opts->crc;
	t->progress = opts->progress;
	t->progress_ctx = opts->progress_ctx;
	switch (opts->out_key_policy) {
	case CKPT_OUT_KEY_SAME:
		t->out_key = opts->open.key;
		break;
	case CKPT_OUT_KEY_NEW:
		t->out_key = opts->out_key;
		break;
	case CKPT_OUT_KEY_NONE:
		t->out_key = NULL;
		break;
	}
	t->one_shot = opts->one_shot;
	t->no_reflink = opts->no_reflink;
	t->memory_staging = opts->open.key || t->out_key;
	t->skip_unrepresentable = opts->skip_unrepresentable;
	t->warn = opts->warn;
	t->warn_ctx = opts->warn_ctx;
}

/* The format commits write (see out_format in ckpt_tree.h), and the
 * metadata the tree starts with. */
static ckpt_err choose_format(struct ckpt_tree *t,
			      const struct ckpt_tree_opts *opts,
			      struct ckpt_error *err)
{
	const char *name = opts->out_format;

	if (name)
		t->format = ckpt_format_by_name(name, strlen(name));
	else if (t->base)
		t->format = t->base->format;
	else if (!(t->format = ckpt_format_by_extension(t->tgt_pl.path)))
		t->format = &ckpt_format_ckpt;
	if (!t->format)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "unknown format '%s' (known: %s)", name,
				 ckpt_format_names());
	if (t->out_key && !t->format->encryptable)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "%s: MindSpore has no encrypted %s files: "
				 "give no output key",
				 t->tgt_pl.path, t->format->name);
	return ckpt_tree_meta_load(t, t->base, err);
}

ckpt_err ckpt_tree_open(const char *path, const struct ckpt_tree_opts *opts,
			struct ckpt_tree **out, struct ckpt_error *err)
{
	static const struct ckpt_tree_opts defaults;
	struct ckpt_tree *t;
	ckpt_err e;

	if (!opts)
		opts = &defaults;
	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	init(t, opts);
	e = CKPT_ERR_INVAL;
	if (t->crc == CKPT_CRC_ADD && t->out_key) {
		ckpt_fail(err, e, 0,
			  "a CRC trailer and encryption cannot be "
			  "combined: MindSpore cannot read such files");
		goto fail;
	}
	e = ckpt_scratch_init(t, opts->scratch, err);
	if (!e)
		e = open_places(t, path, opts, err);
	if (!e)
		e = open_source(t, path, opts, err);
	if (!e && opts->output)
		e = pin_output(t, err);
	if (!e)
		e = choose_format(t, opts, err);
	if (!e)
		e = load_entries(t, err);
	if (e)
		goto fail;
	ckpt_select_apply(t, opts->include, opts->exclude);
	t->ro_reason = opts->read_only ? "it was opened read-only"
				       : why_read_only(t, opts->output);
	if (!t->ro_reason && t->pin_fd >= 0) {
		e = lock_target(t, err);
		if (e)
			goto fail;
	}
	if (!t->ro_reason)
		ckpt_remove_strays(&t->tgt_pl);
	*out = t;
	return CKPT_OK;
fail:
	ckpt_tree_close(t);
	return e;
}

void ckpt_tree_close(struct ckpt_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nslots; i++)
		ckpt_entry_free(t->slots[i]);
	free(t->slots);
	free(t->free_slots);
	free(t->order);
	free(t->buckets);
	ckpt_close(t->base);
	for (size_t i = 0; i < t->nretired; i++)
		ckpt_close(t->retired[i]);
	free(t->retired);
	ckpt_place_close(&t->src_pl);
	ckpt_place_close(&t->tgt_pl);
	if (t->stage_dirfd >= 0)
		close(t->stage_dirfd);
	if (t->tmp_dirfd >= 0)
		close(t->tmp_dirfd);
	ckpt_tree_drop_replaced(t);
	if (t->pin_fd >= 0)
		close(t->pin_fd);
	free(t->staging_dir);
	free(t->tmp_path);
	ckpt_scratch_free(t);
	ckpt_tree_meta_free(t);
	ckpt_tombs_clear(t);
	free(t->tombs);
	if (t->entry_block)
		munmap(t->entry_block, t->entry_block_len);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

/* ---- what the tree tells about itself ----------------------------------- */

const char *ckpt_tree_read_only(const struct ckpt_tree *t)
{
	return t->ro_reason;
}

const struct ckpt_stats *ckpt_tree_source_stats(const struct ckpt_tree *t)
{
	return t->base ? ckpt_stats(t->base) : NULL;
}

const char *ckpt_tree_target(const struct ckpt_tree *t)
{
	return t->tgt_pl.path;
}

void ckpt_tree_owner(const struct ckpt_tree *t, mode_t *mode, uid_t *uid,
		     gid_t *gid)
{
	bool known = t->base != NULL;

	*mode = known ? t->src_mode & 0777 : 0644;
	*uid = known ? t->src_uid : getuid();
	*gid = known ? t->src_gid : getgid();
}

ckpt_err ckpt_tree_statfs(struct ckpt_tree *t, struct statvfs *sv,
			  struct ckpt_error *err)
{
	if (fstatvfs(t->tgt_pl.dirfd, sv) == 0)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_IO, 0,
			 "statfs of the directory of %s: "
			 "%s",
			 t->tgt_pl.path, strerror(errno));
}

const char *ckpt_tree_warning(const struct ckpt_tree *t)
{
	return t->warning[0] ? t->warning : NULL;
}

/* The warning of a source that stores a name twice, apart: only the later
 * record is shown (as MindSpore loads it) and written back. */
static void note_duplicates(struct ckpt_tree *t, const char *path)
{
	const struct ckpt_stats *st = ckpt_stats(t->base);

	if (!st->duplicates)
		return;
	snprintf(t->warning, sizeof(t->warning),
		 "%s stores %llu parameter name(s) twice, apart (first: "
		 "'%.200s'): the later record is shown, as MindSpore loads "
		 "it, and the earlier one will be dropped by the next commit",
		 path, (unsigned long long)st->duplicates,
		 st->dup_name ? st->dup_name : "?");
}

/* The warning of metadata values that are not strings: kept as they are,
 * but Hugging Face's loader refuses the file (safetensors-format.md
 * section 2.5). */
static void note_metadata(struct ckpt_tree *t, const char *path)
{
	for (size_t i = 0; i < ckpt_meta_count(t->base); i++) {
		const struct ckpt_meta_item *it = ckpt_meta_at(t->base, i);
		if (!it->json || t->warning[0])
			continue;
		snprintf(t->warning, sizeof(t->warning),
			 "the metadata of %s holds a value that is not a "
			 "string ('%.100s'): it is kept as it is, but Hugging "
			 "Face's safetensors loader refuses such files",
			 path, it->key);
	}
}
