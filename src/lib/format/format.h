/*
 * format.h - what the on-disk formats share: dtype names and shapes
 * (dtype.c), shown file names (names.c), opening a file in whichever
 * format it is (open.c), and the seam each format module implements
 * (format/FORMAT/).
 */
#ifndef CKPT_FORMAT_SEAM_H
#define CKPT_FORMAT_SEAM_H

#include "index/index.h"

/* The bytes a tensor of dtype dt and shape dims[ndims] holds: prod(dims)
 * times the element size (the element size itself for ndims == 0).  False,
 * *out untouched, if a dim is negative, the product overflows, or (F4, F6)
 * the elements do not fill whole bytes. */
bool ckpt_shape_bytes(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
		      uint64_t *out);

/* dtype.c, the safetensors side of the dtypes: the safetensors name of dt
 * ("F32"; NULL for a dtype safetensors has none for: Int4, which is
 * written as I8, Complex128, HiFloat8, str); a safetensors name of len
 * bytes to its dtype (Int4 never: that is the metadata's to say); dt's
 * rank in Hugging Face's enum, which orders the serializer's output (0:
 * none); whether MindSpore's safetensors loader reads dt (its 13 dtypes,
 * and Int4 through its marker). */
const char *ckpt_dtype_st_name(ckpt_dtype dt);
bool ckpt_dtype_st_parse(const char *s, size_t len, ckpt_dtype *out);
int ckpt_dtype_st_rank(ckpt_dtype dt);
bool ckpt_dtype_ms_loads(ckpt_dtype dt);

/* dtype.c, the .npy side (view/npy.c): the numpy typestr of dt ("<f4",
 * "|V2"; str: "<U", its length in code points to follow), and in *field
 * whether that is the one field of a structured stand-in named by dt's
 * name in lower case ([('hifloat8', '|u1')]).  NULL, *field untouched,
 * for dt out of range. */
const char *ckpt_dtype_npy(ckpt_dtype dt, bool *field);

/* open.c: like ckpt_open on an open descriptor of path (owned from here
 * on, closed on failure): detects and decrypts, picks the format, scans. */
ckpt_err ckpt_open_file(int fd, const char *path,
			const struct ckpt_open_opts *opts,
			struct ckpt_file **out, struct ckpt_error *err);

/* ---- format modules: the seam (format/FORMAT/module.c) ------------------
 *
 * A format is three functions in a descriptor: probe (is this file mine?),
 * scan (a file to an index) and encode (a snapshot of what to write, in
 * format-neutral terms, to the bytes of a file).  A format knows nothing of
 * the editable tree: the commit describes the tree to it (struct
 * ckpt_snapshot, commit/snapshot.c).
 * format/open.c asks the modules in its table, in order; adding a format is
 * a folder format/NAME/ and one line of that table.  encode emits the new
 * file front to back as segments - bytes, ranges of a file, ranges of an
 * entry's bytes - into an emitter that the commit (commit/sink.h) provides:
 * it never writes, seeks or syncs a file itself, and needs no list of the
 * segments in memory (a tree may hold a million parameters).
 */

struct entry; /* an entry of the tree, only passed back to the emitter */
struct ckpt_emitter;

/* What an encode writes into, in file order.  Each call returns CKPT_OK or
 * the failure, already reported into the error the emitter was made with;
 * the encode then stops and returns it. */
struct ckpt_emit_ops {
	/* n bytes at buf, copied before the call returns */
	ckpt_err (*bytes)(struct ckpt_emitter *em, const void *buf, size_t n);
	/* len bytes of fd at pos (a part of the file the tree was opened
	 * from: it stays unchanged while the tree is locked) */
	ckpt_err (*range)(struct ckpt_emitter *em, int fd, uint64_t pos,
			  uint64_t len);
	/* bytes [off, off+len) of file entry e, wherever they are now */
	ckpt_err (*entry)(struct ckpt_emitter *em, const struct entry *e,
			  uint64_t off, uint64_t len);
};

struct ckpt_emitter {
	const struct ckpt_emit_ops *ops;
	/* Set by an encode that must see every byte it emits (a checksum):
	 * the emitter calls watch(watch_ctx, ...) on all of them, in order,
	 * and then reads sources into memory instead of copying them in the
	 * kernel.  NULL: nobody watches. */
	void (*watch)(void *ctx, const void *p, size_t n);
	void *watch_ctx;
};

/* One parameter of a snapshot as an encode writes it. */
struct ckpt_out_param {
	bool skip;	  /* not written (scratch, filtered, empty) */
	bool is_map;	  /* a map parameter: only orig can be written */
	bool untouched;	  /* name, dtype, shape and bytes are orig's */
	const char *name; /* as stored (any bytes), name_len of them */
	size_t name_len;
	const char *fname; /* the shown name, for messages */
	ckpt_dtype dtype;  /* what to write (not set for a map) */
	uint32_t ndims;
	int64_t dims[CKPT_MAX_DIMS];
	uint64_t size; /* bytes, emitted with ops->entry(entry) */
	const struct entry *entry;
	const struct ckpt_param *orig; /* as the file had it, or NULL */
	int orig_fd;		       /* the file orig is indexed in */
};

/* A consistent snapshot of what to write: count parameters in order. */
struct ckpt_snapshot {
	size_t count;
	bool checksum; /* end with the format's checksum, if it has one */
	/* Fills *p with parameter i (< count); fails (CKPT_ERR_INVAL) when
	 * its dtype and shape do not fit its bytes, err says so. */
	ckpt_err (*param)(const struct ckpt_snapshot *s, size_t i,
			  struct ckpt_out_param *p, struct ckpt_error *err);
	/* Copies bytes [off, off+len) of file entry e into buf (a format
	 * whose checksum comes before the data reads them twice). */
	ckpt_err (*read)(const struct ckpt_snapshot *s, const struct entry *e,
			 uint64_t off, void *buf, size_t len,
			 struct ckpt_error *err);
	/* The tree's metadata (own_meta: it has its own, as read from a
	 * file with metadata and edited since; else a format writes its
	 * defaults): nmeta items in order, has_meta if the file had a
	 * metadata object at all. */
	const struct ckpt_meta_item *meta;
	size_t nmeta;
	bool own_meta, has_meta;
	/* What cannot be written in this format (a map or a str parameter
	 * in safetensors) is left out with a warning instead of failing. */
	bool skip_unrepresentable;
	/* Says something the user should know about what is written (a
	 * name MindSpore cannot load); msg is a sentence without newline. */
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
	/* If set, and the format's encode indexes what it writes (struct
	 * ckpt_format), the encode also builds the index of the new file
	 * here, as its scan would find it (apart from fd, path and ident,
	 * which are the caller's), so that nobody needs to read the file
	 * back; index->format is set once the index is complete.  A file
	 * the encode could not index is no failure of the encode: the
	 * format stays NULL and the caller scans the file.  Starts as a
	 * zeroed struct ckpt_file. */
	struct ckpt_file *index;
	const void *ctx;
};

struct ckpt_format {
	const char *name;
	/* MindSpore wraps files of this format in encrypted blocks (crypt/):
	 * a tree with an output key is written through the encrypted sink,
	 * and one of a format without this is refused. */
	bool encryptable;
	/* The extension of its files (".ckpt"), for new files and recovery
	 * files. */
	const char *extension;
	/* NULL if a tensor may be named name (len bytes, valid UTF-8), else
	 * why not ("is the key of the metadata"). */
	const char *(*name_refused)(const char *name, size_t len);
	/* True if the format can store tensors of dtype dt. */
	bool (*holds)(ckpt_dtype dt);
	/* Files of this format carry metadata (key -> string) that the
	 * tree shows and edits (ckpt_tree_meta_*). */
	bool metadata;
	/* True if a file whose plaintext starts with the len bytes at head
	 * (fewer than asked for if the file is shorter, or none if it could
	 * not be read) and holds size bytes is of this format. */
	bool (*probe)(const uint8_t *head, size_t len, uint64_t size);
	/* Scans the plaintext f->fd (f->stats.file_size bytes; stream_size
	 * the same unless the scan finds a trailer) into f's index, checking
	 * what opts ask (NULL: the defaults); the errors name what is wrong
	 * where. */
	ckpt_err (*scan)(struct ckpt_file *f, const struct ckpt_open_opts *opts,
			 struct ckpt_error *err);
	/* Checks the format's checksum of a scanned file (ckpt_verify_crc):
	 * CKPT_OK if it has none or it matches. */
	ckpt_err (*verify_crc)(struct ckpt_file *f, struct ckpt_error *err);
	/* The encode fills a snapshot's index (see struct ckpt_snapshot). */
	bool encode_indexes;
	/* Emits the file that holds snapshot s into em, front to back; NULL
	 * for a format that cannot be written.  On failure the emitted
	 * bytes are garbage. */
	ckpt_err (*encode)(const struct ckpt_snapshot *s,
			   struct ckpt_emitter *em, struct ckpt_error *err);
};

/* Bytes of the head the probes see: enough for any magic. */
#define CKPT_PROBE_LEN 16

/* The MindSpore checkpoint (format/ckpt/module.c). */
extern const struct ckpt_format ckpt_format_ckpt;

/* Hugging Face's safetensors, as MindSpore writes and reads it
 * (format/safetensors/module.c). */
extern const struct ckpt_format ckpt_format_safetensors;

/* open.c: the format named name (len bytes), or NULL. */
const struct ckpt_format *ckpt_format_by_name(const char *name, size_t len);

/* open.c: the format whose extension path ends with, or NULL. */
const struct ckpt_format *ckpt_format_by_extension(const char *path);

/* format/ckpt/encode.c: the encode of ckpt_format_ckpt (see struct
 * ckpt_format): MindSpore >= 2.3 records, unchanged records copied as they
 * are, and the crc_num trailer when the snapshot asks for a checksum. */
ckpt_err ckpt_encode(const struct ckpt_snapshot *s, struct ckpt_emitter *em,
		     struct ckpt_error *err);

#endif /* CKPT_FORMAT_SEAM_H */
