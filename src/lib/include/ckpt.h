/*
 * ckpt.h - public interface of libckpt, the FUSE-free checkpoint library.
 *
 * libckpt opens a MindSpore checkpoint, scans its protobuf stream record by
 * record and builds an index: parameter name -> dtype, shape and the list of
 * file extents that hold its bytes.  Tensor data is never copied at open;
 * reads go to the file by offset.  The on-disk layout is documented in
 * ckpt_format.h.
 *
 * Every function that can fail returns a ckpt_err and, when given a non-NULL
 * struct ckpt_error, fills it with a message that names the file, the byte
 * offset and the problem.  All symbols carry the ckpt_ prefix.
 */
#ifndef CKPT_H
#define CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- errors ------------------------------------------------------------ */

typedef enum ckpt_err {
	CKPT_OK = 0,
	CKPT_ERR_IO,	      /* a system call failed; sys_errno says which */
	CKPT_ERR_NOMEM,	      /* out of memory */
	CKPT_ERR_CORRUPT,     /* the file is not a valid checkpoint */
	CKPT_ERR_CRC,	      /* the crc_num trailer does not match the data */
	CKPT_ERR_UNSUPPORTED, /* valid, but uses something we cannot handle */
	CKPT_ERR_NOTFOUND,    /* no such parameter */
	CKPT_ERR_INVAL,	      /* bad argument (e.g. malformed dtype or shape) */
	CKPT_ERR_READONLY,    /* the checkpoint was opened read-only */
	CKPT_ERR_PERM,	      /* operation not supported on this entry */
	CKPT_ERR_EXISTS,      /* the name is taken */
	CKPT_ERR_CHANGED,     /* the checkpoint changed underneath us */
	CKPT_ERR_BUSY,	      /* another writer holds the checkpoint */
	CKPT_ERR_ISDIR,	      /* the entry is a directory (a map parameter) */
	CKPT_ERR_NOTEMPTY,    /* the directory of a tree view is not empty */
} ckpt_err;

/* What the user can do about a failure.  The library's messages say what
 * is wrong; a front end adds the remedy in its own spelling (ckptfs
 * "-o ro", ckpt "--enc-mode"), as ckpt_hint_text in src/common does. */
enum ckpt_hint {
	CKPT_HINT_NONE,
	CKPT_HINT_READ_ONLY, /* open it read-only instead */
	CKPT_HINT_FORCE,     /* force the commit over the file found there */
	CKPT_HINT_FIX_SHAPE, /* set the parameter's shape or dtype */
	CKPT_HINT_GIVE_KEY,  /* give the key, of mode hint_mode */
	CKPT_HINT_USE_MODE,  /* give mode hint_mode instead */
	CKPT_HINT_ONE_KEY,   /* give a key file or a key descriptor, not both */
	CKPT_HINT_IGNORE_CRC, /* open it without the CRC check (read-only) */
};

/* Details of the last failure.  msg is a complete sentence for the user. */
struct ckpt_error {
	ckpt_err code;
	int sys_errno;	 /* errno of the failed call for CKPT_ERR_IO, else 0 */
	uint64_t offset; /* byte offset the problem was found at, if any */
	enum ckpt_hint hint;
	int hint_mode; /* enum ckpt_enc_mode, for the key hints */
	char msg[640];
};

/* Short, static description of an error code ("corrupt checkpoint", ...). */
const char *ckpt_strerror(ckpt_err code);

/* The errno value that best describes err (EIO, ENOMEM, ENOENT, ...).
 * This is the single place where library errors become errno values. */
int ckpt_errno(const struct ckpt_error *err);

/* ---- dtypes and shapes ------------------------------------------------- */

/* Most dims a tensor may have (MindSpore uses at most 8). */
#define CKPT_MAX_DIMS 64

typedef enum ckpt_dtype {
	CKPT_DT_BOOL,
	CKPT_DT_INT4,
	CKPT_DT_INT8,
	CKPT_DT_INT16,
	CKPT_DT_INT32,
	CKPT_DT_INT64,
	CKPT_DT_UINT8,
	CKPT_DT_UINT16,
	CKPT_DT_UINT32,
	CKPT_DT_UINT64,
	CKPT_DT_FLOAT16,
	CKPT_DT_FLOAT32,
	CKPT_DT_FLOAT64,
	CKPT_DT_BFLOAT16,
	CKPT_DT_COMPLEX64,
	CKPT_DT_COMPLEX128,
	CKPT_DT_FLOAT8E4M3FN,
	CKPT_DT_FLOAT8E5M2,
	CKPT_DT_HIFLOAT8,
	CKPT_DT_STR,
	/* safetensors dtypes MindSpore has no name for (shown by their
	 * safetensors names); F4 and F6 are 4 and 6 bits per element */
	CKPT_DT_F8_E8M0,
	CKPT_DT_F8_E4M3FNUZ,
	CKPT_DT_F8_E5M2FNUZ,
	CKPT_DT_F4,
	CKPT_DT_F6_E2M3,
	CKPT_DT_F6_E3M2,
	CKPT_DT_COUNT
} ckpt_dtype;

/* MindSpore's spelling of dt ("Float32", "UInt8", "str", ...); for a
 * dtype MindSpore has no name for, the safetensors one ("F8_E8M0"). */
const char *ckpt_dtype_name(ckpt_dtype dt);

/* Bytes per element of dt (str: 4, one UTF-32 code point); 0 for F4 and
 * F6, whose elements are smaller than a byte (see ckpt_dtype_bits). */
size_t ckpt_dtype_size(ckpt_dtype dt);

/* Bits per element of dt (8 x ckpt_dtype_size, or 4 and 6); 0 out of
 * range. */
unsigned ckpt_dtype_bits(ckpt_dtype dt);

/* The number of elements of dt that bytes bytes hold, if a whole number
 * of them does (the inferred 1-D shape); false, *n untouched, if not. */
bool ckpt_dtype_elems(ckpt_dtype dt, uint64_t bytes, uint64_t *n);

/* Parses a dtype name of len bytes.  Accepts MindSpore spellings, the old
 * "Uint8".."Uint64" spelling, numpy names ("float32", "int64", "bool",
 * "bfloat16", ...) and safetensors names ("F32", "BF16", "F8_E4M3", ...).
 * Returns false if the name is unknown. */
bool ckpt_dtype_parse(const char *s, size_t len, ckpt_dtype *out);

/* Like ckpt_dtype_parse, but only the spellings MindSpore writes as a
 * tensor_type (and the old "Uint*"): what a plain tensor may carry. */
bool ckpt_dtype_parse_stored(const char *s, size_t len, ckpt_dtype *out);

/* Writes a shape as "[6,1,5,5]" ("[]" for ndims == 0) into buf.  Returns
 * the length the full string needs, like snprintf. */
int ckpt_shape_format(const int64_t *dims, uint32_t ndims, char *buf,
		      size_t size);

/* Parses a shape ("6,1,5,5", "[6, 1, 5, 5]", "[]", "()") into dims (at most
 * CKPT_MAX_DIMS).  Returns false if malformed. */
bool ckpt_shape_parse(const char *s, size_t len, int64_t *dims,
		      uint32_t *ndims);

/* ---- names ------------------------------------------------------------- */

/* Maximum parameter name length accepted in a file (bytes). */
#define CKPT_NAME_MAX 65536

/* Returns the file name under which a parameter name of len bytes is shown:
 * '%' -> "%25", '/' -> "%2F", control characters (NUL, newline, escape,
 * DEL, ...) -> "%XX"; "." and ".." get their dots written "%2E"; the empty
 * name is shown as "%".  The mapping is one to one.
 * Returns a malloc'd string or NULL when out of memory. */
char *ckpt_name_escape(const char *name, size_t len);

/* Decodes a shown file name back to the parameter name: a malloc'd,
 * NUL-terminated copy in *name (which may hold NULs; *len bytes).  Fails
 * with CKPT_ERR_INVAL unless ckpt_name_escape would give fname back (so the
 * mapping stays 1:1), CKPT_ERR_NOMEM when out of memory. */
ckpt_err ckpt_name_unescape(const char *fname, char **name, size_t *len);

/* Decodes a name as a user types it: every %XX (two hex digits, either
 * case) becomes the byte XX, all else stays, and "%" alone is the empty
 * name.  Unlike ckpt_name_unescape it also takes spellings
 * ckpt_name_escape would not give ("a%20b", "%41"), so ckpt_name_escape of
 * the result is the canonical shown name.  The result as for
 * ckpt_name_unescape; CKPT_ERR_INVAL for a '%' without two hex digits
 * after it. */
ckpt_err ckpt_name_decode(const char *fname, char **name, size_t *len);

/* True if the len bytes at s are valid UTF-8 (no overlong forms, no
 * surrogates), as protobuf requires of a string field and JSON of a
 * string.  Pure; s may hold NULs. */
bool ckpt_utf8_valid(const char *s, size_t len);

/* ---- an open checkpoint ------------------------------------------------ */

/* A run of tensor bytes stored contiguously in the source. */
struct ckpt_extent {
	uint64_t pos; /* offset of the run within the tensor's stored bytes */
	uint64_t src; /* offset of the run in the source file */
	uint64_t len;
};

/* One tensor as shown: dtype, shape, and where its bytes are.  Every
 * pointer refers to memory owned by the open file, valid until ckpt_close
 * and never to be written through (a million small parameters share a few
 * large blocks, and 1-D dims point into a shared constant table).  The
 * struct is 48 bytes: dtype is a bit-field, ndims a byte (CKPT_MAX_DIMS). */
struct ckpt_tensor {
	const char *type_str; /* tensor_type exactly as stored in the file */
	int64_t *dims;	      /* ndims entries (never NULL) */
	struct ckpt_extent *extents; /* in pos order, covering [0, stored);
				      * NULL when nextents is 0 */
	uint64_t size;		     /* shown byte count */
	uint64_t stored;	     /* byte count in the source (2 x size if
			       * bf16_from_f32) */
	uint32_t nextents;
	ckpt_dtype dtype : 8;
	uint8_t ndims;	     /* shown rank; 0 for scalars (dims [] or [0]) */
	bool dims_zero_form; /* the file wrote the scalar as dims [0] */
	bool bf16_from_f32;  /* BFloat16 stored as float32 (MindSpore 2.2.10-
			       * 2.2.14); shown as the upper 2 bytes of each */
};

enum ckpt_param_kind {
	CKPT_PARAM_TENSOR,
	CKPT_PARAM_MAP, /* MapTensorProto: keys, values, status */
};

enum {
	CKPT_MAP_KEYS,
	CKPT_MAP_VALUES,
	CKPT_MAP_STATUS,
	CKPT_MAP_NTENSORS
};

/* File names of the three tensors of a map parameter, by index. */
extern const char *const ckpt_map_names[CKPT_MAP_NTENSORS];

/* One parameter (104 bytes; its pointers as those of struct ckpt_tensor). */
struct ckpt_param {
	char *name;  /* tag as stored (may contain any byte) */
	char *fname; /* ckpt_name_escape(name); the same pointer as name
			  * when escaping changes nothing */
	struct ckpt_tensor *map; /* kind MAP: CKPT_MAP_NTENSORS tensors,
				  * map[CKPT_MAP_KEYS] ...; NULL for a plain
				  * tensor */
	uint64_t rec_off;	 /* offset of the first record of this parameter
			    * (of its last occurrence, if the name repeats) */
	uint64_t rec_len;	 /* bytes of its records if they are contiguous,
			    * else 0 */
	size_t name_len;
	uint32_t nslices; /* records the parameter is stored in */
	enum ckpt_param_kind kind : 8;
	struct ckpt_tensor tensor; /* kind TENSOR (all zero for a map) */
};

/* ---- encryption (format document, section 6) ---------------------------- */

enum ckpt_enc_mode {
	CKPT_ENC_NONE,
	CKPT_ENC_AES_GCM,
	CKPT_ENC_AES_CBC,
	CKPT_ENC_SM4_CBC,
};

/* A key as MindSpore's enc_key: raw bytes, no KDF, with its mode.  Opaque:
 * it only comes from ckpt_key_read or ckpt_key_load, which keep it out of
 * swap and core dumps where the system allows, and goes back with
 * ckpt_key_free, which wipes it. */
struct ckpt_key;

/* "AES-GCM", "AES-CBC", "SM4-CBC" (case-insensitive) -> mode.  Returns
 * false, *mode untouched, for any other name ("none" included). */
bool ckpt_enc_mode_parse(const char *s, enum ckpt_enc_mode *mode);

/* The name of mode as ckpt_enc_mode_parse takes it ("none" for
 * CKPT_ENC_NONE, "?" for a value out of range). */
const char *ckpt_enc_mode_name(enum ckpt_enc_mode mode);

/* The cryptographic library the process runs with, as it names itself
 * ("OpenSSL 3.0.15 3 Sep 2024"), for --version. */
const char *ckpt_crypto_version(void);

/* Reads a key of mode from fd (all bytes up to EOF, at most 64) into a new
 * locked key.  The length must suit the mode (AES: 16, 24 or 32; SM4: 16). */
ckpt_err ckpt_key_read(int fd, enum ckpt_enc_mode mode, struct ckpt_key **out,
		       struct ckpt_error *err);

/* The key as the command lines give it: mode name ("AES-GCM", ...) and
 * either keyfile (a path, "-" for standard input) or keyfd >= 0.  All of
 * them absent (NULL, NULL, -1): *out = NULL and CKPT_OK. */
ckpt_err ckpt_key_load(const char *mode, const char *keyfile, int keyfd,
		       struct ckpt_key **out, struct ckpt_error *err);

/* Wipes and frees a key from ckpt_key_read or ckpt_key_load.  NULL is a
 * no-op. */
void ckpt_key_free(struct ckpt_key *key);

/* The mode key was read for. */
enum ckpt_enc_mode ckpt_key_mode(const struct ckpt_key *key);

/* The length of key in bytes (16, 24 or 32). */
size_t ckpt_key_len(const struct ckpt_key *key);

/* The encryption mode whose block magic the file at fd starts with, or
 * CKPT_ENC_NONE for a plain checkpoint. */
enum ckpt_enc_mode ckpt_detect_encryption(int fd);

/* What ckpt_open found out besides the parameters. */
struct ckpt_stats {
	uint64_t disk_size;	 /* bytes of the file on disk */
	uint64_t file_size;	 /* bytes of the (decrypted) file */
	uint64_t stream_size;	 /* protobuf bytes (file minus crc trailer) */
	uint64_t records;	 /* top-level Value records */
	uint64_t unknown_fields; /* skipped top-level fields (v0.5 model_type) */
	uint64_t duplicates;	 /* names reappearing non-contiguously */
	const char *dup_name;	 /* the first of them (owned by the index) */
	uint64_t data_bytes;	 /* sum of shown tensor sizes */
	bool has_crc;		 /* file ends with a crc_num trailer */
	bool crc_wide;		 /* ... holding more than 32 bits: damaged */
	bool crc_checked;	 /* trailer was verified */
	uint32_t crc_stored, crc_computed;
	enum ckpt_enc_mode enc_mode; /* the file was encrypted with this */
	bool enc_legacy;	     /* MindSpore 1.3-1.6 layout */
	uint64_t enc_blocks;
	uint64_t header_size; /* safetensors: bytes of the JSON header */
};

struct ckpt_open_opts {
	bool skip_crc;		    /* do not verify the crc_num trailer */
	const struct ckpt_key *key; /* decrypt with this key */
	const char *format; /* "ckpt" or "safetensors"; NULL: by content */
};

struct ckpt_file;

/* Opens path read-only, scans it and builds the index.  opts may be NULL.
 * On success stores a handle in *out; on failure returns the error, fills
 * err (if non-NULL) and leaves *out NULL.  A CRC mismatch is an error
 * (CKPT_ERR_CRC) unless opts->skip_crc. */
ckpt_err ckpt_open(const char *path, const struct ckpt_open_opts *opts,
		   struct ckpt_file **out, struct ckpt_error *err);

/* Scans an already open descriptor (for example decrypted data in a memfd).
 * Takes ownership of fd, which is closed by ckpt_close or on failure.
 * label names the data in messages. */
ckpt_err ckpt_open_fd(int fd, const char *label,
		      const struct ckpt_open_opts *opts, struct ckpt_file **out,
		      struct ckpt_error *err);

/* Releases everything ckpt_open allocated.  NULL is a no-op. */
void ckpt_close(struct ckpt_file *f);

/* Path or label the file was opened with. */
const char *ckpt_path(const struct ckpt_file *f);

/* Descriptor the extents refer to (owned by f, valid until ckpt_close). */
int ckpt_fd(const struct ckpt_file *f);

/* True if the src offsets of f's extents are offsets in the file as it
 * is stored (for ckpt_open: the file at ckpt_path, as read from its first
 * byte); false for an encrypted file, whose extents are offsets in its
 * decrypted plaintext, which exists only behind ckpt_fd. */
bool ckpt_extents_in_file(const struct ckpt_file *f);

/* What the scan of f found out (sizes, counts, CRC and encryption); owned
 * by f and valid until ckpt_close. */
const struct ckpt_stats *ckpt_stats(const struct ckpt_file *f);

/* Number of parameters and the i-th in file order (i < ckpt_count). */
size_t ckpt_count(const struct ckpt_file *f);
const struct ckpt_param *ckpt_param_at(const struct ckpt_file *f, size_t i);

/* Looks a parameter up by its shown file name (see ckpt_name_escape).
 * Returns its index or -1. */
ssize_t ckpt_find(const struct ckpt_file *f, const char *fname);

/* Reads up to size shown bytes of t starting at off into buf, and stores
 * their count in *done (0 at or past the end). */
ckpt_err ckpt_tensor_read(const struct ckpt_file *f,
			  const struct ckpt_tensor *t, void *buf, size_t size,
			  uint64_t off, size_t *done, struct ckpt_error *err);

/* Index of the extent holding stored byte pos of t (pos < t->stored). */
uint32_t ckpt_tensor_extent_at(const struct ckpt_tensor *t, uint64_t pos);

/* Reads the whole file and compares its CRC with the one it stores (the
 * crc_num trailer of a checkpoint, the crc_num metadata of a safetensors
 * file).  Returns CKPT_OK if there is none or it matches. */
ckpt_err ckpt_verify_crc(struct ckpt_file *f, struct ckpt_error *err);

/* ---- formats and metadata --------------------------------------------- */

/* The names of the formats ckpt_open reads ("ckpt", "safetensors"), for
 * messages and --help: "ckpt, safetensors". */
const char *ckpt_format_names(void);

/* The format whose files end like path (".ckpt", ".safetensors"), or
 * NULL: what a new file of that name is written as. */
const char *ckpt_format_for_path(const char *path);

/* True if name (len bytes) names a format ckpt_open reads. */
bool ckpt_format_known(const char *name, size_t len);

/* The format f was read in: "ckpt" or "safetensors". */
const char *ckpt_format_of(const struct ckpt_file *f);

/* One key of a file's metadata (safetensors __metadata__), in file
 * order. */
struct ckpt_meta_item {
	const char *key;
	const char *value; /* the string, or (json) a value's compact JSON */
	bool json;	   /* not a string: HF's loader refuses the file */
	bool marker;	   /* "NAME": "Int4" for an I8 tensor NAME, which is
			    * then shown as Int4 */
};

/* The version of the JSON library safetensors headers are parsed with
 * ("2.14"), for --version. */
const char *ckpt_json_version(void);

/* True if f has metadata at all (a safetensors file with __metadata__,
 * even an empty one). */
bool ckpt_has_metadata(const struct ckpt_file *f);

/* Number of metadata keys of f, and the i-th (i < ckpt_meta_count), owned
 * by f. */
size_t ckpt_meta_count(const struct ckpt_file *f);
const struct ckpt_meta_item *ckpt_meta_at(const struct ckpt_file *f, size_t i);

/* ---- CRC-32 (IEEE, as zlib.crc32) -------------------------------------- */

/* Continues crc over len bytes (buf may be NULL if len is 0); start with
 * crc = 0.  Chunks chain: ckpt_crc32(ckpt_crc32(0, a, n), b, m) is the CRC
 * of a's n bytes followed by b's m. */
uint32_t ckpt_crc32(uint32_t crc, const void *buf, size_t len);

/* What ckpt_crc32 is computed with ("ISA-L 2.30.0 (crc32_gzip_refl)", the
 * version built against, or the portable code), for --version. */
const char *ckpt_crc32_impl(void);

#endif /* CKPT_H */
