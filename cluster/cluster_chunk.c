/*
 * cluster_chunk.c - the one chunked sender: a full route set, a full retained set and a moved
 * session are each too big for one envelope, so their items are collected into the caller's
 * arrays and sent as a series of envelopes of about CLUSTER_CHUNK_MAX bytes each, the last one
 * marked. The caller knows its items (fill, release); this file knows when and how to send.
 */
#include "buf.h"
#include "cluster_int.h"

/* Grow every one of the caller's k parallel arrays (arrs[i], elem[i] bytes an element) to hold n + 1
 * items. An array that grew before another failed keeps its larger block: *cap records only the
 * capacity all of them have. */
bool chunk_reserve(struct chunker *ck, size_t *cap, size_t n, void **const arrs[],
                   const size_t elem[], size_t k)
{
    if (ck->failed)
        return false;
    if (n < *cap)
        return true;
    size_t ncap = 0;
    for (size_t i = 0; i < k; i++) {
        ncap = buf_grow(arrs[i], *cap, n + 1, elem[i], SIZE_MAX);
        if (!ncap) {
            ck->failed = true;
            return false;
        }
    }
    *cap = ncap;
    return true;
}

/* Items are small next to a chunk: sending once past the bound keeps chunks near it. */
void chunk_added(struct chunker *ck, size_t bytes)
{
    ck->bytes += bytes;
    if (ck->bytes >= CLUSTER_CHUNK_MAX)
        chunk_flush(ck, false);
}

/* The envelope is built by the caller's fill (its body lives in the caller's context until the
 * pack here), then the pending items are released whether or not it could be sent. */
bool chunk_flush(struct chunker *ck, bool last)
{
    Cl__Envelope env = CL__ENVELOPE__INIT;
    ck->fill(ck->ctx, &env, last);
    struct wbuf *w = cluster_pack(ck->c, &env);
    if (w)
        peer_send(ck->p, w);
    else
        ck->failed = true;
    wbuf_unref(w);
    ck->release(ck->ctx);
    ck->bytes = 0;
    return w != NULL;
}

/* Give up on what is pending: released, not sent. */
void chunk_drop(struct chunker *ck)
{
    ck->release(ck->ctx);
    ck->bytes = 0;
}
