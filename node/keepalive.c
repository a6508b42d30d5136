/*
 * keepalive.c - the periodic sweep of every connection: keepalive at 1.5x [MQTT-3.1.2-24], the
 * CONNECT timeout for silent sockets, output buffers of quiet connections given back, and stalled
 * subscribers found.
 */
#include "conn_int.h"

void conns_sweep(struct conns *cs)
{
    struct broker *b = cs->b;
    uint64_t now = broker_now_ms(b);
    struct conn *c = cs->list;
    while (c) {
        struct conn *next = c->next;
        if (c->state == CONN_NEW && conn_idle_ms(c, now) > CONN_CONNECT_TIMEOUT_MS) {
            mqtt_close(c, MQTT_ERR_CONNECT_TIMEOUT);
        } else if (c->state == CONN_ACTIVE && c->keepalive && c->reading &&
                   conn_idle_ms(c, now) > (uint32_t)c->keepalive * 1500) {
            mqtt_close(c, MQTT_ERR_KEEPALIVE);
        } else {
            conn_trim(c); /* nothing written since the last flush */
            if (c->session && c->state == CONN_ACTIVE)
                session_check_stall(b, c->session, now);
        }
        c = next;
    }
}
