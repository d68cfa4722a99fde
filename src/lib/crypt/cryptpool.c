/*
 * cryptpool.c - running the blocks of a file through worker threads.
 *
 * decrypt.c and encwriter.c both cut their work into independent blocks.
 * Threads take block numbers in increasing order under a mutex; each owns
 * an OpenSSL context and a buffer (aligned for direct I/O), which is
 * wiped at the end (it held plaintext).  After a failure no higher block is started, and
 * the error returned is that of the lowest failed block: the one a single
 * thread going through the file in order would have reported.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "crypt/crypt.h"

enum {
	MAX_THREADS = 64
};

struct pool {
	uint64_t n;
	size_t chunk_size;
	ckpt_crypt_job job;
	void (*after)(void *arg, uint64_t i);
	void *arg;
	pthread_mutex_t mu;
	uint64_t next; /* next block to take */
	uint64_t bad;  /* lowest failed block, n if none */
	ckpt_err e;
	struct ckpt_error err;
};

unsigned ckpt_crypto_threads(void)
{
	const char *env = getenv("CKPT_CRYPTO_THREADS");
	long n;

	if (env && *env) {
		n = strtol(env, NULL, 10);
		if (n >= 1 && n <= MAX_THREADS)
			return (unsigned)n;
	}
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct ckpt_crypt_scratch s = {EVP_CIPHER_CTX_new(),
				       aligned_alloc(CKPT_CRYPT_ALIGN,
						     p->chunk_size)};
	struct ckpt_error err;

	for (;;) {
		uint64_t i;
		ckpt_err e;

		pthread_mutex_lock(&p->mu);
		i = p->next < p->n && p->next < p->bad ? p->next++ : p->n;
		pthread_mutex_unlock(&p->mu);
		if (i == p->n)
			break;
		e = !s.ctx || !s.chunk
			    ? ckpt_fail(&err, CKPT_ERR_NOMEM, 0,
					"out of memory "
					"for the cryptography buffers")
			    : p->job(p->arg, i, &s, &err);
		pthread_mutex_lock(&p->mu);
		if (e && i < p->bad) {
			p->bad = i;
			p->e = e;
			p->err = err;
		}
		if (p->after)
			p->after(p->arg, i);
		pthread_mutex_unlock(&p->mu);
	}
	if (s.chunk)
		OPENSSL_cleanse(s.chunk, p->chunk_size);
	free(s.chunk);
	EVP_CIPHER_CTX_free(s.ctx);
	return NULL;
}

ckpt_err ckpt_crypt_parallel(uint64_t n, unsigned nthreads, size_t chunk_size,
			     ckpt_crypt_job job,
			     void (*after)(void *arg, uint64_t i), void *arg,
			     struct ckpt_error *err)
{
	struct pool p = {.n = n,
			 .job = job,
			 .after = after,
			 .arg = arg,
			 .bad = n,
			 .chunk_size = (chunk_size + !chunk_size +
					CKPT_CRYPT_ALIGN - 1) /
				       CKPT_CRYPT_ALIGN * CKPT_CRYPT_ALIGN};
	pthread_t tids[MAX_THREADS];
	unsigned started = 0;

	if (nthreads > n)
		nthreads = (unsigned)n;
	pthread_mutex_init(&p.mu, NULL);
	while (started + 1 < nthreads && started < MAX_THREADS &&
	       pthread_create(&tids[started], NULL, worker, &p) == 0)
		started++;
	worker(&p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&p.mu);
	if (p.bad == n)
		return CKPT_OK;
	if (err)
		*err = p.err;
	return p.e;
}
