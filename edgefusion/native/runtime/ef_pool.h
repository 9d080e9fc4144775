/*
 * A persistent pool of worker threads for the frame path (POSIX threads): ef_pool_run(job)
 * runs job(arg, band) for band = 0 .. threads - 1 at once, band 0 on the caller's thread, and
 * returns when every band is done. Workers are created by ef_pool_start and joined by
 * ef_pool_stop; a run allocates nothing and creates no thread (a mutex and two condition
 * variables). Compiled with EF_NO_THREADS (targets without pthreads): only 1 thread.
 * One pool is driven by one thread at a time (that of its ef_context).
 */
#ifndef EF_POOL_H
#define EF_POOL_H

#include <stddef.h>

#ifndef EF_NO_THREADS
#include <pthread.h>
#endif

/* Most threads of one pool (edgefusion.h: ef_options.frame_threads). */
#define EF_POOL_MAX 64

typedef void (*ef_pool_job)(void *arg, int band);

typedef struct ef_pool ef_pool;

#ifndef EF_NO_THREADS
typedef struct {
    ef_pool *pool;
    int band;
} ef_pool_worker;
#endif

struct ef_pool {
    int threads; /* bands of a run: the workers + the caller (1 before ef_pool_start) */
#ifndef EF_NO_THREADS
    int workers;     /* started worker threads */
    int sync;        /* 1 once lock, wake and idle exist */
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    unsigned long generation; /* runs so far: a worker runs a job when it changes */
    int busy;                 /* workers still running the current job */
    int stop;
    ef_pool_job job;
    void *arg;
    pthread_t tid[EF_POOL_MAX - 1];
    ef_pool_worker worker[EF_POOL_MAX - 1];
#endif
};

/* Results of ef_pool_start. */
#define EF_POOL_OK 0
#define EF_POOL_EARG 1        /* threads out of 0 .. EF_POOL_MAX */
#define EF_POOL_EUNSUPPORTED 2 /* threads > 1 in an EF_NO_THREADS build */
#define EF_POOL_ESTART 3      /* a mutex, condition variable or thread cannot be created (the pool is then stopped) */

/* Start threads - 1 workers (threads 0 or 1: none) in a zeroed pool; on failure a message in err. */
int ef_pool_start(ef_pool *pool, int threads, char *err, size_t err_len);
/* Run job on every band and wait for all of them. */
void ef_pool_run(ef_pool *pool, ef_pool_job job, void *arg);
/* Join the workers and release the pool (a zeroed or stopped pool is allowed). */
void ef_pool_stop(ef_pool *pool);

#endif
