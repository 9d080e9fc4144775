/* The frame path's worker threads (ef_pool.h). */
#define _POSIX_C_SOURCE 200112L
#include "ef_pool.h"

#include <stdio.h>
#include <string.h>

#ifndef EF_NO_THREADS
static void *work(void *p) {
    ef_pool_worker *me = (ef_pool_worker *)p;
    ef_pool *pool = me->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop) break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        pool->job(pool->arg, me->band);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0) pthread_cond_signal(&pool->idle);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}
#endif

int ef_pool_start(ef_pool *pool, int threads, char *err, size_t err_len) {
    pool->threads = 1;
    if (threads < 0 || threads > EF_POOL_MAX) {
        snprintf(err, err_len, "frame_threads %d out of range (0 .. %d)", threads, EF_POOL_MAX);
        return EF_POOL_EARG;
    }
#ifdef EF_NO_THREADS
    if (threads > 1) {
        snprintf(err, err_len, "frame_threads %d: this build has no threads (EF_NO_THREADS); use 0 or 1", threads);
        return EF_POOL_EUNSUPPORTED;
    }
#else
    if (threads <= 1) return 0;
    if (pthread_mutex_init(&pool->lock, NULL)) {
        snprintf(err, err_len, "cannot create the frame threads' mutex");
        return EF_POOL_ESTART;
    }
    if (pthread_cond_init(&pool->wake, NULL)) {
        pthread_mutex_destroy(&pool->lock);
        snprintf(err, err_len, "cannot create the frame threads' condition variable");
        return EF_POOL_ESTART;
    }
    if (pthread_cond_init(&pool->idle, NULL)) {
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
        snprintf(err, err_len, "cannot create the frame threads' condition variable");
        return EF_POOL_ESTART;
    }
    pool->sync = 1;
    for (int i = 0; i < threads - 1; i++) {
        int rc;
        pool->worker[i].pool = pool;
        pool->worker[i].band = i + 1;
        if ((rc = pthread_create(&pool->tid[i], NULL, work, &pool->worker[i])) != 0) {
            snprintf(err, err_len, "cannot start frame thread %d of %d: %s", i + 2, threads, strerror(rc));
            ef_pool_stop(pool);
            return EF_POOL_ESTART;
        }
        pool->workers = i + 1;
    }
    pool->threads = threads;
#endif
    return 0;
}

void ef_pool_run(ef_pool *pool, ef_pool_job job, void *arg) {
#ifndef EF_NO_THREADS
    if (pool->workers > 0) {
        pthread_mutex_lock(&pool->lock);
        pool->job = job;
        pool->arg = arg;
        pool->busy = pool->workers;
        pool->generation++;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        job(arg, 0);
        pthread_mutex_lock(&pool->lock);
        while (pool->busy > 0) pthread_cond_wait(&pool->idle, &pool->lock);
        pthread_mutex_unlock(&pool->lock);
        return;
    }
#else
    (void)pool;
#endif
    job(arg, 0);
}

void ef_pool_stop(ef_pool *pool) {
#ifndef EF_NO_THREADS
    if (pool->sync) {
        pthread_mutex_lock(&pool->lock);
        pool->stop = 1;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int i = 0; i < pool->workers; i++) pthread_join(pool->tid[i], NULL);
        pthread_cond_destroy(&pool->idle);
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
        pool->sync = 0;
        pool->workers = 0;
    }
#endif
    pool->threads = 1;
}
