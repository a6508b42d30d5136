/*
 * cluster_net.c - the cluster's nng transport: what its two halves share, and its shutdown.
 *
 * Each node listens on tcp://cluster_bind:cluster_port; every peer dials it with its own push0
 * socket. So each direction between two nodes is one TCP connection carrying one ordered stream,
 * and a message meant for one peer goes to that peer only. The receive side is cluster_rx.c (one
 * link per inbound connection, read and paused on its own), the send side cluster_tx.c (one queue,
 * one sender and one push0 socket per peer). What is left here belongs to neither alone: struct
 * wbuf (an encoded envelope shared by every peer it goes to) and net_shutdown, which must stop
 * both halves' nng callbacks in order before anything is freed, and closes the sockets on a
 * helper thread with a bounded wait because nng_close can hang.
 */
#include <stdlib.h>
#include <time.h>

#include "cluster_int.h"

/* One encoded envelope, reference-counted so one copy serves every peer it goes to. */
struct wbuf *wbuf_new(size_t len)
{
    struct wbuf *w = malloc(sizeof(*w) + len);
    if (!w)
        return NULL;
    atomic_init(&w->refs, 1);
    w->len = len;
    return w;
}

/* Drop a reference; the last one frees w. Any thread (NULL is a no-op). */
void wbuf_unref(struct wbuf *w)
{
    if (w && atomic_fetch_sub(&w->refs, 1) == 1)
        free(w);
}

/* nng_close can hang on a socket torn down under load (nanomsg/nng#1219, closing pull0 while a
 * push0 peer sends). At shutdown our callbacks are stopped first, then the sockets are closed on a
 * helper thread that gets CLUSTER_CLOSE_WAIT_MS: if nng is stuck, the process exits anyway. */
struct closer {
    nng_socket *socks;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool abandoned; /* the waiter gave up: the thread frees the closer */
};

/* Helper thread: close the sockets; whoever finishes last (waiter or thread) frees the closer. */
static void *closer_main(void *arg)
{
    struct closer *cl = arg;
    for (size_t i = 0; i < cl->n; i++)
        nng_close(cl->socks[i]);
    pthread_mutex_lock(&cl->mu);
    cl->done = true;
    bool abandoned = cl->abandoned;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    if (abandoned) {
        free(cl->socks);
        free(cl);
    }
    return NULL;
}

/* Close socks, waiting at most timeout_ms. True if all closed. */
static bool net_close_bounded(nng_socket *socks, size_t n, unsigned timeout_ms)
{
    struct closer *cl = calloc(1, sizeof(*cl));
    pthread_t th;
    if (!cl)
        goto inline_close;
    cl->socks = socks;
    cl->n = n;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    if (pthread_create(&th, NULL, closer_main, cl) != 0) {
        free(cl);
        goto inline_close;
    }
    pthread_detach(th);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cl->mu);
    while (!cl->done && pthread_cond_timedwait(&cl->cv, &cl->mu, &deadline) == 0)
        ;
    bool done = cl->done;
    cl->abandoned = !done;
    pthread_mutex_unlock(&cl->mu);
    if (done) {
        free(cl->socks);
        free(cl);
    }
    return done;
inline_close:
    for (size_t i = 0; i < n; i++)
        nng_close(socks[i]);
    free(socks);
    return true;
}

/* Shutdown, in an order that leaves no nng callback running on what is freed: sends stopped,
 * callbacks of both halves stopped, sockets closed (bounded), then links and listener freed. */
void net_shutdown(struct cluster *c)
{
    /* 1. No more sends: queues dropped, completions do not start new sends. */
    for (struct peer *p = c->peers; p; p = p->next) {
        pthread_mutex_lock(&p->mu);
        p->accepting = false;
        p->want_low = false;
        p->tx_dropped += p->out_count + p->stage_count;
        p->out_head = p->out_len = p->out_count = 0;
        pthread_mutex_unlock(&p->mu);
        p->stage_len = p->stage_count = 0;
        broker_flow_release(c->b, &p->gate);
    }
    atomic_store(&c->rx_stop, true);
    /* 2. Stop our callbacks (each waits for one in progress to return): no accept, and every
     * link's stream closed so its pending read ends. */
    if (c->accept_aio)
        nng_aio_stop(c->accept_aio);
    pthread_mutex_lock(&c->in_mu);
    struct rx_link *links = c->links;
    pthread_mutex_unlock(&c->in_mu);
    for (struct rx_link *l = links; l; l = l->next)
        nng_stream_close(l->s);
    for (struct rx_link *l = links; l; l = l->next)
        nng_aio_stop(l->aio);
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->aio)
            nng_aio_stop(p->aio);
    /* 3. Close the sockets, bounded. */
    size_t n = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        n += p->open;
    nng_socket *socks = n ? calloc(n, sizeof(*socks)) : NULL;
    size_t k = 0;
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->open && socks)
            socks[k++] = p->sock;
    bool closed = true;
    if (socks)
        closed = net_close_bounded(socks, k, CLUSTER_CLOSE_WAIT_MS);
    if (!closed)
        log_warn(c->log, "cluster: nng did not close its sockets within %d ms; exiting anyway",
                 CLUSTER_CLOSE_WAIT_MS);
    for (struct peer *p = c->peers; p; p = p->next) {
        if (p->aio && closed)
            nng_aio_free(p->aio); /* stopped above: no callback can be running */
        p->aio = NULL;
        p->open = false;
        p->busy = false;
    }
    /* 4. What was received and not handled is dropped with the links. */
    c->rx_ready = NULL;
    while (c->links)
        rx_link_free(c->links);
    if (c->rx) {
        nng_stream_listener_close(c->rx);
        nng_stream_listener_free(c->rx);
        c->rx = NULL;
    }
    if (c->accept_aio)
        nng_aio_free(c->accept_aio);
    c->accept_aio = NULL;
}
