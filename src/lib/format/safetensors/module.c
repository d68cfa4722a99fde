/*
 * module.c - safetensors as a format module: the descriptor format/open.c
 * and the commit use (format.h).  Probe: the 8-byte length is plausible
 * and the header starts (after JSON whitespace) with '{'.  Scan: the
 * header (header.c), then the crc_num a MindSpore 2.5+ file may carry in
 * its metadata (crc.c), checked unless the caller skips it.
 *
 * Owns nothing and takes no lock.  MindSpore never encrypts safetensors,
 * so the format is not encryptable: open.c refuses a key for it.
 */
#include <stdlib.h>
#include <string.h>

#include "format/safetensors/st_format.h"

/* A length this small is far beyond the header limit already (the probe
 * claims such a file so that its scan can say what is wrong), and the
 * first 8 bytes of a protobuf checkpoint are never below it (they hold
 * the start of a name). */
#define PROBE_MAX_LEN (1ULL << 32)

/* ckpt_format probe: a plausible length, then JSON whitespace and '{'. */
static bool probe(const uint8_t *head, size_t len, uint64_t size)
{
	uint64_t n = 0;
	size_t i = 8;

	(void)size;
	if (len < 9)
		return false;
	for (int k = 7; k >= 0; k--)
		n = n << 8 | head[k];
	if (n < 2 || n >= PROBE_MAX_LEN)
		return false;
	while (i < len && (head[i] == ' ' || head[i] == '\t' ||
			   head[i] == '\n' || head[i] == '\r'))
		i++;
	return i < len && head[i] == '{';
}

/* The crc_num the metadata of f holds, if any, into the stats: has_crc,
 * crc_stored, and crc_wide when it is not a 32-bit decimal. */
static void find_crc(struct ckpt_file *f)
{
	for (size_t i = 0; i < f->nmeta; i++) {
		const struct ckpt_meta_item *it = &f->meta[i];
		char *end;
		unsigned long long v;

		if (strcmp(it->key, ST_CRC_KEY) != 0)
			continue;
		f->stats.has_crc = true;
		v = strtoull(it->value, &end, 10);
		f->stats.crc_wide = it->json || !*it->value || *end ||
				    it->value[0] == '-' || v > UINT32_MAX;
		f->stats.crc_stored = (uint32_t)v;
		return;
	}
}

/* ckpt_format verify_crc: crc_num against the tensors. */
static ckpt_err verify_crc(struct ckpt_file *f, struct ckpt_error *err)
{
	uint32_t crc;
	ckpt_err r;

	if (!f->stats.has_crc)
		return CKPT_OK;
	if (f->stats.crc_wide)
		return ckpt_fail(err, CKPT_ERR_CRC, 8,
				 "%s: the crc_num in its metadata is not a "
				 "32-bit decimal number, so not MindSpore's "
				 "CRC-32; the file is damaged",
				 f->path);
	r = st_crc_of_file(f, &crc, err);
	if (r)
		return r;
	f->stats.crc_checked = true;
	f->stats.crc_computed = crc;
	if (crc != f->stats.crc_stored)
		return ckpt_fail(
			err, CKPT_ERR_CRC, 8,
			"%s: CRC mismatch: the crc_num in its metadata "
			"says %u but the tensors give %u; the file is "
			"damaged",
			f->path, f->stats.crc_stored, crc);
	return CKPT_OK;
}

/* ckpt_format scan: the header, then the crc_num unless opts skip it. */
static ckpt_err scan(struct ckpt_file *f, const struct ckpt_open_opts *opts,
		     struct ckpt_error *err)
{
	ckpt_err r = st_scan_header(f, err);

	if (r)
		return r;
	find_crc(f);
	return opts && opts->skip_crc ? CKPT_OK : verify_crc(f, err);
}

const char *st_name_refused(const char *name, size_t len)
{
	if (len == 12 && memcmp(name, "__metadata__", 12) == 0)
		return "is the key of the metadata";
	if (memchr(name, '\0', len))
		return "holds a NUL byte, which the JSON reader (jansson) "
		       "cannot read back";
	return NULL;
}

/* ckpt_format holds: the dtypes with a safetensors name, and Int4 (I8
 * with its marker). */
static bool holds(ckpt_dtype dt)
{
	return dt == CKPT_DT_INT4 || ckpt_dtype_st_name(dt) != NULL;
}

const struct ckpt_format ckpt_format_safetensors = {
	.name = "safetensors",
	.encryptable = false,
	.metadata = true,
	.extension = ".safetensors",
	.name_refused = st_name_refused,
	.probe = probe,
	.holds = holds,
	.scan = scan,
	.verify_crc = verify_crc,
	.encode = st_encode,
};
