/*
 * handle_connect.c - CONNECT: validation, authentication, client-id takeover, session set-up,
 * CONNACK.
 *
 * The handler checks and copies what it needs out of the packet (which points into a read buffer),
 * then either finishes at once or, when the cluster asks for it, holds the connection until the
 * same client id has been closed on other nodes and its session moved here (conns_resume_held).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "topic.h"

/* Copy what the connection needs of p until its session is attached. */
static int connect_copy(struct conn *c, const struct mqtt_connect *p)
{
    struct broker *b = conn_broker(c);
    struct conn_connect *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return -1;
    c->connect = cc; /* freed with the connection if anything below fails */
    if (p->client_id.len) {
        cc->client_id = strndup(p->client_id.data, p->client_id.len);
    } else {
        char gen[40];
        broker_client_id_gen(b, gen, sizeof(gen));
        cc->client_id = strdup(gen);
    }
    if (!cc->client_id)
        return -1;
    if (p->has_username && !(cc->username = strndup(p->username.data, p->username.len)))
        return -1;
    if (p->will_flag) {
        c->will = message_new(p->will_topic.data, p->will_topic.len,
                              (const uint8_t *)p->will_payload.data, p->will_payload.len,
                              p->will_qos, p->will_retain);
        if (!c->will)
            return -1;
    }
    cc->clean = p->clean_session;
    c->keepalive = p->keepalive;
    c->proto = p->level;
    return 0;
}

int handle_connect(struct conn *c, const struct mqtt_connect *p)
{
    struct broker *b = conn_broker(c);
    if (c->over_limit)
        return MQTT_ERR_SERVER_FULL;
    /* [MQTT-3.1.3-7/8] an empty id needs a clean session; then the server assigns one
     * [MQTT-3.1.3-6]. */
    if (p->client_id.len == 0 && !p->clean_session)
        return MQTT_ERR_EMPTY_ID;
    uint8_t rc = broker_authenticate(b, p);
    if (rc != MQTT_CONNACK_ACCEPTED)
        return rc == MQTT_CONNACK_NOT_AUTHORIZED ? MQTT_ERR_NOT_AUTHORIZED
                                                 : MQTT_ERR_BAD_CREDENTIALS;
    if (p->will_flag && !topic_name_valid(p->will_topic.data, p->will_topic.len))
        return MQTT_ERR_WILL_TOPIC;
    if (connect_copy(c, p) < 0)
        return MQTT_ERR_NO_MEMORY;
    const char *id = c->connect->client_id;

    /* Same id connected here: the older connection is closed, its will published [MQTT-3.1.4-2]. */
    struct session *old = session_get(b, id, strlen(id));
    if (old && session_conn(old)) {
        char peer[64];
        log_info(broker_log(b), "client %s taken over by %s", id, conn_peer(c, peer, sizeof(peer)));
        conn_close(session_conn(old), NULL);
    }
    uint64_t token = broker_connect_hold(b, id, c->connect->clean);
    if (token) {
        c->connect->token = token;
        c->state = CONN_HELD;
        conn_update_reading(c); /* in CONN_HELD: stops reading until conns_resume_held */
        return MQTT_OK;
    }
    return connect_finish(c);
}

int connect_finish(struct conn *c)
{
    struct broker *b = conn_broker(c);
    struct broker_core *core = broker_core(b);
    struct conn_connect *cc = c->connect;
    size_t id_len = strlen(cc->client_id);
    struct session *s = session_get(b, cc->client_id, id_len);
    if (s && session_conn(s)) /* taken over while held */
        conn_close(session_conn(s), NULL);
    s = session_get(b, cc->client_id, id_len);
    if (s && cc->clean) { /* [MQTT-3.1.2-6] a clean session discards the previous one */
        session_destroy(b, s);
        s = NULL;
    }
    bool present = s != NULL; /* [MQTT-3.2.2-1/2/3] */
    if (!s && !(s = session_create(b, cc->client_id, id_len, cc->clean)))
        return MQTT_ERR_NO_MEMORY;
    c->state = CONN_ACTIVE;
    c->session = s;
    session_attach(b, s, c, cc->username, cc->clean); /* the username moves to the session */
    cc->username = NULL;
    conn_mark_rx(c);
    core->stats.clients_connected++;
    if (core->stats.clients_connected > core->stats.clients_maximum)
        core->stats.clients_maximum = core->stats.clients_connected;
    uint8_t ack[CODEC_CONNACK_SIZE];
    if (conn_write(c, ack, codec_encode_connack(ack, present, MQTT_CONNACK_ACCEPTED)) < 0)
        return MQTT_ERR_NO_MEMORY;
    char peer[64];
    log_debug(&core->log, "client %s connected from %s (clean %d, keepalive %u)", cc->client_id,
              conn_peer(c, peer, sizeof(peer)), cc->clean, c->keepalive);
    free(cc->client_id); /* the session has its own copy; an idle connection keeps no extra */
    free(cc);
    c->connect = NULL;
    if (present)
        session_resume(b, s);
    return MQTT_OK;
}

void conns_resume_held(struct conns *cs, uint64_t token)
{
    for (struct conn *c = cs->list; c; c = c->next) {
        if (c->state != CONN_HELD || c->connect->token != token)
            continue;
        int rc = connect_finish(c);
        if (rc != MQTT_OK) {
            mqtt_close(c, rc);
            return;
        }
        if (c->in_len)
            mqtt_input(c);
        if (c->state == CONN_ACTIVE)
            conn_update_reading(c);
        return;
    }
}
