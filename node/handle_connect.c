/*
 * handle_connect.c - CONNECT: validation, authentication, client-id takeover, session set-up,
 * CONNACK.
 *
 * The handler checks and copies what it needs out of the packet (which points into a read buffer),
 * then either finishes at once or, when the cluster asks for it, holds the connection until the
 * same client id has been closed on other nodes and its session moved here (broker_connect_resume).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_internal.h"

/* Send CONNACK with a refusal code and close [MQTT-3.2.2-5]. */
static void connect_refuse(struct conn *c, uint8_t rc, const char *why)
{
    uint8_t ack[CODEC_CONNACK_SIZE];
    conn_write(c, ack, codec_encode_connack(ack, false, rc));
    char peer[64];
    log_info(&c->b->log, "refused CONNECT from %s: %s", conn_peer(c, peer, sizeof(peer)), why);
    conn_close(c, NULL);
}

/* Authentication per --password-file and --allow-anonymous. Returns a CONNACK code. */
static uint8_t connect_authenticate(struct broker *b, const struct mqtt_connect *p)
{
    if (!p->has_username)
        return b->cfg.allow_anonymous ? MQTT_CONNACK_ACCEPTED : MQTT_CONNACK_NOT_AUTHORIZED;
    if (!b->auth)
        return MQTT_CONNACK_ACCEPTED;
    char user[256];
    if (p->username.len >= sizeof(user))
        return MQTT_CONNACK_BAD_CREDENTIALS;
    memcpy(user, p->username.data, p->username.len);
    user[p->username.len] = '\0';
    if (!p->has_password || !auth_check(b->auth, user, p->password.data, p->password.len))
        return MQTT_CONNACK_BAD_CREDENTIALS;
    return MQTT_CONNACK_ACCEPTED;
}

void handle_connect(struct conn *c, const struct mqtt_connect *p)
{
    struct broker *b = c->b;
    if (c->over_limit) {
        connect_refuse(c, MQTT_CONNACK_UNAVAILABLE, "max-connections reached");
        return;
    }
    /* [MQTT-3.1.3-7/8] an empty id needs a clean session; then the server assigns one
     * [MQTT-3.1.3-6]. */
    if (p->client_id.len == 0 && !p->clean_session) {
        connect_refuse(c, MQTT_CONNACK_ID_REJECTED, "empty client id with clean session 0");
        return;
    }
    uint8_t rc = connect_authenticate(b, p);
    if (rc != MQTT_CONNACK_ACCEPTED) {
        connect_refuse(c, rc,
                       rc == MQTT_CONNACK_NOT_AUTHORIZED ? "anonymous not allowed"
                                                         : "bad username or password");
        return;
    }
    if (p->will_flag && !topic_name_valid(p->will_topic.data, p->will_topic.len)) {
        conn_protocol_error(c, "invalid will topic");
        return;
    }
    if (p->client_id.len) {
        c->client_id = strndup(p->client_id.data, p->client_id.len);
    } else {
        char gen[40];
        snprintf(gen, sizeof(gen), "auto-%016llx-%llx", (unsigned long long)b->id_prefix,
                 (unsigned long long)++b->id_counter);
        c->client_id = strdup(gen);
    }
    if (!c->client_id)
        goto oom;
    if (p->has_username && !(c->username = strndup(p->username.data, p->username.len)))
        goto oom;
    if (p->will_flag) {
        c->will = message_new(p->will_topic.data, p->will_topic.len,
                              (const uint8_t *)p->will_payload.data, p->will_payload.len,
                              p->will_qos, p->will_retain);
        if (!c->will)
            goto oom;
    }
    c->clean = p->clean_session;
    c->keepalive = p->keepalive;

    /* Same id connected here: the older connection is closed, its will published [MQTT-3.1.4-2]. */
    struct session *old = session_get(b, c->client_id, strlen(c->client_id));
    if (old && old->conn) {
        char peer[64];
        log_info(&b->log, "client %s taken over by %s", c->client_id,
                 conn_peer(c, peer, sizeof(peer)));
        conn_close(old->conn, NULL);
    }
    c->token = ++b->next_token;
    if (b->hooks.on_connect &&
        b->hooks.on_connect(b->hooks.ctx, c->client_id, c->clean, c->token)) {
        c->state = CONN_HELD;
        conn_read_start(c); /* in CONN_HELD: stops reading until broker_connect_resume */
        return;
    }
    connect_finish(c);
    return;
oom:
    conn_close(c, "out of memory");
}

/* Second half of CONNECT: session, CONNACK, then anything the session has waiting. */
void connect_finish(struct conn *c)
{
    struct broker *b = c->b;
    size_t id_len = strlen(c->client_id);
    struct session *s = session_get(b, c->client_id, id_len);
    if (s && s->conn) /* taken over while held */
        conn_close(s->conn, NULL);
    s = session_get(b, c->client_id, id_len);
    if (s && c->clean) { /* [MQTT-3.1.2-6] a clean session discards the previous one */
        session_destroy(b, s);
        s = NULL;
    }
    bool present = s != NULL; /* [MQTT-3.2.2-1/2/3] */
    if (!s && !(s = session_create(b, c->client_id, id_len, c->clean))) {
        conn_close(c, "out of memory");
        return;
    }
    s->clean = c->clean;
    free(s->username);
    s->username = c->username; /* ownership moves to the session */
    c->username = NULL;
    s->conn = c;
    c->session = s;
    c->state = CONN_ACTIVE;
    c->last_rx_ms = broker_now_ms(b);
    b->stats.clients_connected++;
    if (b->stats.clients_connected > b->stats.clients_maximum)
        b->stats.clients_maximum = b->stats.clients_connected;
    uint8_t ack[CODEC_CONNACK_SIZE];
    if (conn_write(c, ack, codec_encode_connack(ack, present, MQTT_CONNACK_ACCEPTED)) < 0)
        return; /* out of memory: the connection is closing and the session detached */
    char peer[64];
    log_debug(&b->log, "client %s connected from %s (clean %d, keepalive %u)", c->client_id,
              conn_peer(c, peer, sizeof(peer)), c->clean, c->keepalive);
    free(c->client_id); /* the session has its own copy; an idle connection keeps no extra */
    c->client_id = NULL;
    if (present)
        session_resume(b, s);
}

/* The cluster finished its part of a held CONNECT: finish it and read what the client sent
 * meanwhile. */
void broker_connect_resume(struct broker *b, uint64_t token)
{
    for (struct conn *c = b->conns; c; c = c->next) {
        if (c->state != CONN_HELD || c->token != token)
            continue;
        connect_finish(c);
        if (c->state != CONN_ACTIVE)
            return;
        if (c->in_len)
            conn_process_input(c);
        if (c->state == CONN_ACTIVE)
            conn_read_start(c);
        return;
    }
}
