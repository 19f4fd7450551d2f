/*
 * mount_loop.c - the daemon's request loop: one reader at a time.
 *
 * libfuse's multi-threaded loop keeps several threads waiting in read()
 * on /dev/fuse, and the kernel hands each request to the one that waited
 * longest. Every request then wakes a sleeping thread, often on the other
 * CPU, and the release the kernel sends without waiting after a close
 * runs beside the next open, both contending for fs.lock. Nearly all our
 * requests are short and serialised by fs.lock anyway, so here one thread
 * at a time holds the reader's role: it reads a request, answers it and
 * reads the next, as a single-threaded loop would.
 *
 * More threads are needed only where a request waits for the kernel or
 * for another request: a notify call (the kernel may wait for a page
 * whose READ is queued behind it), a wait for releases (let_readers_go)
 * and one for a push to land (cache_make_way). Before such a wait the handler calls loop_may_block(),
 * which passes the role to an idle thread, or starts one (at most
 * MAX_THREADS); the handler's thread becomes idle when it is done. So at
 * any time exactly one thread reads, unless all are busy, and then the
 * first one to finish reads.
 *
 * For the same reason the loop does not end (a signal, loop_kick) while
 * a thread still answers a request: the reader goes on answering until
 * none does. Only an unmount ends it at once, as the kernel then fails
 * every request that was waiting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "mount.h"

#include <fuse_lowlevel.h>

#define MAX_THREADS 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t turn; /* the role is free, or the loop ends */
    struct fuse_session *se;
    bool running;        /* loop_run is on */
    bool role_taken;     /* a thread holds the reader's role */
    bool done;           /* the loop ends: every thread returns */
    bool in_read;        /* reader is in (or about to enter) read() */
    pthread_t reader;
    pthread_t threads[MAX_THREADS]; /* [0] is loop_run's own */
    unsigned nthreads, idle;
    unsigned busy;       /* threads answering a request */
    int err;             /* the first error that ended the loop */
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .turn = PTHREAD_COND_INITIALIZER};

/* This thread holds the role while it answers a request (cleared when a
 * handler passes it on). */
static __thread bool holds_role;

static void end_loop(int err)
{
    if (err < 0 && !L.err)
        L.err = err;
    L.done = true;
    pthread_cond_broadcast(&L.turn);
}

/* Whether the loop may end now: asked to (or unmounted), and no other
 * thread is answering a request. One that is may wait for the kernel,
 * which may wait for a request still queued (see the top): until it is
 * done, the reader goes on reading. Needs L.mu. */
static bool may_end(void)
{
    return (L.done || fuse_session_exited(L.se)) && !L.busy;
}

static void *worker(void *arg)
{
    bool role = arg != NULL;
    struct fuse_buf buf = {.mem = NULL};
    pthread_mutex_lock(&L.mu);
    for (;;) {
        if (!role) {
            L.idle++;
            while (L.role_taken && !L.done)
                pthread_cond_wait(&L.turn, &L.mu);
            L.idle--;
            if (L.role_taken)
                break; /* the loop ends, and another thread reads */
            L.role_taken = role = true;
        }
        if (may_end()) {
            end_loop(0);
            break;
        }
        L.reader = pthread_self();
        L.in_read = true;
        pthread_mutex_unlock(&L.mu);
        int res = fuse_session_receive_buf(L.se, &buf);
        pthread_mutex_lock(&L.mu);
        L.in_read = false;
        if (res == -EINTR || res == -EAGAIN)
            continue; /* a kick (loop_kick), or nothing yet */
        if (res <= 0) {
            /* 0: unmounted (libfuse has marked the session exited); the
             * kernel has failed every request that was waiting. */
            end_loop(res);
            break;
        }
        holds_role = true;
        L.busy++;
        pthread_mutex_unlock(&L.mu);
        fuse_session_process_buf(L.se, &buf);
        pthread_mutex_lock(&L.mu);
        L.busy--;
        role = holds_role;
        holds_role = false;
        if (!role && may_end() && L.in_read)
            pthread_kill(L.reader, SIGUSR2); /* it may stop reading now */
    }
    if (role)
        L.role_taken = false;
    pthread_cond_broadcast(&L.turn);
    pthread_mutex_unlock(&L.mu);
    free(buf.mem);
    return NULL;
}

void loop_may_block(void)
{
    if (!holds_role)
        return; /* not a loop thread, or the role is passed already */
    holds_role = false;
    pthread_mutex_lock(&L.mu);
    L.role_taken = false;
    if (L.idle) {
        pthread_cond_signal(&L.turn);
    } else if (L.nthreads < MAX_THREADS &&
               pthread_create(&L.threads[L.nthreads], NULL, worker, NULL) ==
                   0) {
        /* Even when the loop is ending (the idle have gone): this thread
         * is busy, so the loop goes on, and someone must read. */
        L.nthreads++;
    }
    /* Else every thread is busy: the first one back takes the role. */
    pthread_mutex_unlock(&L.mu);
}

int loop_run(struct fuse_session *se)
{
    pthread_mutex_lock(&L.mu);
    L.se = se;
    L.running = true;
    L.role_taken = true;
    L.threads[0] = pthread_self();
    L.nthreads = 1;
    pthread_mutex_unlock(&L.mu);

    worker(se);

    /* Whoever ended the loop woke the idle; a thread still answering a
     * request sees done when it comes back. */
    pthread_mutex_lock(&L.mu);
    end_loop(0);
    pthread_mutex_unlock(&L.mu);
    /* A thread still busy may start another (loop_may_block): join until
     * none is left that could. */
    for (unsigned i = 1;; i++) {
        pthread_mutex_lock(&L.mu);
        unsigned n = L.nthreads;
        pthread_mutex_unlock(&L.mu);
        if (i >= n)
            break;
        pthread_join(L.threads[i], NULL);
    }
    pthread_mutex_lock(&L.mu);
    L.running = false;
    int err = L.err;
    pthread_mutex_unlock(&L.mu);
    return err;
}

void loop_kick(struct fuse_session *se, pthread_t main_thread)
{
    pthread_mutex_lock(&L.mu);
    if (!L.running) {
        /* libfuse's own loop (or ours, not started yet, which looks at
         * the flag before its first read). */
        pthread_mutex_unlock(&L.mu);
        fuse_session_exit(se);
        pthread_kill(main_thread, SIGUSR2);
        return;
    }
    /* Not fuse_session_exit: libfuse then drops every request it reads,
     * unanswered, and a busy thread may be waiting for one of them. */
    end_loop(0);
    /* A kick that lands between in_read and read() is lost: the caller
     * kicks again until the loop has returned. */
    if (L.in_read)
        pthread_kill(L.reader, SIGUSR2);
    pthread_mutex_unlock(&L.mu);
}
