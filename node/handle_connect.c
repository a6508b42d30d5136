/*
 * handle_connect.c - CONNECT: validation, authentication, client-id takeover, session set-up,
 * CONNACK.
 *
 * The handler checks and copies what it needs out of the packet (which points into a read buffer),
 * then either finishes at once or, when the cluster asks for it, holds the connection until the
 * same client id has been closed on other nodes and its session moved here (conns_resume_held).
 *
 * MQTT 5 adds: the CONNECT properties (Session Expiry Interval, Receive Maximum, Maximum Packet
 * Size, Request Problem Information, Authentication Method), the Will Properties, and a CONNACK
 * that says what this server allows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_int.h"
#include "topic.h"

/* Copy what the connection needs of p until its session is attached. */
static int connect_copy(struct conn *c, const struct mqtt_connect *p, const struct props_view *pv)
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
        cc->assigned = true;
    }
    if (!cc->client_id)
        return -1;
    char ident[256];
    const char *id = c->t->ops->identity ? c->t->ops->identity(c->t, ident, sizeof(ident)) : NULL;
    if (id && id[0]) { /* the certificate's name is the username (--use-identity-as-username) */
        if (!(cc->username = strdup(id)))
            return -1;
    } else if (p->has_username && !(cc->username = strndup(p->username.data, p->username.len))) {
        return -1;
    }
    if (p->will_flag) {
        const struct props_view *wv = &p->will_props;
        uint8_t *wp = NULL;
        size_t wn = 0;
        if (c->v5 && wv->len) {
            if (!(wp = malloc(wv->len)))
                return -1;
            /* All but the Will Delay Interval (the broker's) and the expiry (kept as a time). */
            wn = props_copy_except(wv, 1ULL << PROP_WILL_DELAY | 1ULL << PROP_MESSAGE_EXPIRY, wp);
            /* Its expiry counts from its publication (conn_close sets it then). */
            if (props_has(&wv->v, PROP_MESSAGE_EXPIRY))
                c->v5->will_expiry = wv->v.message_expiry;
            if (props_has(&wv->v, PROP_WILL_DELAY))
                c->v5->will_delay = wv->v.will_delay;
        }
        c->will = message_new5(p->will_topic.data, p->will_topic.len,
                               (const uint8_t *)p->will_payload.data, p->will_payload.len,
                               p->will_qos, p->will_retain, wp, wn, 0);
        free(wp);
        if (!c->will)
            return -1;
    }
    cc->clean = p->clean_session;
    cc->expiry = p->clean_session ? 0 : SESSION_NEVER_EXPIRES;
    if (c->v5) { /* Clean Start and the expiry interval are separate in MQTT 5 [MQTT-3.1.2-4/5] */
        cc->expiry = props_has(&pv->v, PROP_SESSION_EXPIRY) ? pv->v.session_expiry : 0;
        if (props_has(&pv->v, PROP_RECEIVE_MAXIMUM))
            c->v5->receive_max = pv->v.receive_maximum;
        if (props_has(&pv->v, PROP_MAXIMUM_PACKET_SIZE))
            c->v5->max_packet = pv->v.maximum_packet_size;
        if (props_has(&pv->v, PROP_TOPIC_ALIAS_MAXIMUM)) /* aliases we may send [MQTT-3.3.2-7] */
            c->v5->alias_out_max = pv->v.topic_alias_maximum < CONN5_ALIAS_OUT_MAX
                                       ? pv->v.topic_alias_maximum
                                       : CONN5_ALIAS_OUT_MAX;
        if (props_has(&pv->v, PROP_REQUEST_PROBLEM_INFO))
            c->v5->problem_info = pv->v.request_problem_info;
    }
    c->keepalive = p->keepalive;
    c->proto = p->level;
    /* max-keepalive: a v5 client is told the keepalive to use [MQTT-3.2.2-21]. */
    uint16_t maxka = broker_cfg(b)->max_keepalive;
    if (c->v5 && maxka && (p->keepalive == 0 || p->keepalive > maxka)) {
        c->keepalive = maxka;
        cc->server_keepalive = true;
    }
    cc->response_info =
        c->v5 && props_has(&pv->v, PROP_REQUEST_RESPONSE_INFO) && pv->v.request_response_info == 1;
    return 0;
}

int handle_connect(struct conn *c, const struct mqtt_packet *pkt)
{
    struct broker *b = conn_broker(c);
    const struct mqtt_connect *p = &pkt->u.connect;
    if (p->level == MQTT_PROTOCOL_LEVEL_5 && conn5_init(c) < 0)
        return MQTT_ERR_NO_MEMORY;
    /* What a refusing CONNACK must respect already: the client's size limit and whether it wants
     * a Reason String [MQTT-3.2.2-19], [MQTT-3.1.2-29]. */
    if (c->v5 && props_has(&pkt->props.v, PROP_MAXIMUM_PACKET_SIZE))
        c->v5->max_packet = pkt->props.v.maximum_packet_size;
    if (c->v5 && props_has(&pkt->props.v, PROP_REQUEST_PROBLEM_INFO))
        c->v5->problem_info = pkt->props.v.request_problem_info;
    if (c->over_limit)
        return MQTT_ERR_SERVER_FULL;
    /* [MQTT-3.1.3-7/8] a 3.1.1 empty id needs a clean session; then the server assigns one
     * [MQTT-3.1.3-6]. MQTT 5 assigns one in any case and says which [MQTT-3.2.2-16]. */
    if (p->client_id.len == 0 && !p->clean_session && !c->v5)
        return MQTT_ERR_EMPTY_ID;
    /* No enhanced authentication method is supported yet: refused as the spec says
     * [MQTT-4.12.0-1]. */
    if (c->v5 && props_has(&pkt->props.v, PROP_AUTH_METHOD))
        return MQTT_ERR_BAD_AUTH_METHOD;
    /* 3.1.1 cannot be told another keepalive: refused, as Mosquitto does. */
    uint16_t maxka = broker_cfg(b)->max_keepalive;
    if (!c->v5 && maxka && (p->keepalive == 0 || p->keepalive > maxka))
        return MQTT_ERR_KEEPALIVE_LONG;
    /* A certificate that names the client authenticated it (as Mosquitto's
     * use_identity_as_username: no password is checked). */
    char ident[256];
    const char *cert_id =
        c->t->ops->identity ? c->t->ops->identity(c->t, ident, sizeof(ident)) : NULL;
    if (cert_id && !cert_id[0])
        return MQTT_ERR_NOT_AUTHORIZED; /* a certificate without a name to use */
    uint8_t rc = cert_id ? MQTT_CONNACK_ACCEPTED : broker_authenticate(b, p);
    if (rc != MQTT_CONNACK_ACCEPTED)
        return rc == MQTT_CONNACK_NOT_AUTHORIZED ? MQTT_ERR_NOT_AUTHORIZED
                                                 : MQTT_ERR_BAD_CREDENTIALS;
    if (p->will_flag && !topic_name_valid(p->will_topic.data, p->will_topic.len))
        return MQTT_ERR_WILL_TOPIC;
    if (c->v5 && p->will_flag) {
        const struct props_values *wv = &p->will_props.v;
        /* The will's Response Topic as a PUBLISH's (CONNACK 0x82) [MQTT-3.3.2-14], and its
         * payload checked as a PUBLISH's is (CONNACK 0x99) [MQTT-3.1.3.2.3]. */
        if (props_has(wv, PROP_RESPONSE_TOPIC) &&
            !topic_name_valid(wv->response_topic.data, wv->response_topic.len))
            return CODEC_ERR_PROTOCOL;
        if (props_has(wv, PROP_PAYLOAD_FORMAT) && wv->payload_format == 1 &&
            !codec_utf8_valid(p->will_payload.data, p->will_payload.len))
            return MQTT_ERR_PAYLOAD_FORMAT;
    }
    /* A v5 will above the Maximum QoS this server announces is refused (CONNACK 0x9B)
     * [MQTT-3.2.2-12]; 3.1.1 has no such refusal and keeps accepting it. */
    if (c->v5 && p->will_flag && p->will_qos > broker_cfg(b)->max_qos)
        return MQTT_ERR_QOS;
    if (connect_copy(c, p, &pkt->props) < 0)
        return MQTT_ERR_NO_MEMORY;
    const char *id = c->connect->client_id;

    /* Same id connected here: the older connection is closed, its will published [MQTT-3.1.4-2]. */
    struct session *old = session_get(b, id, strlen(id));
    if (old && session_conn(old)) {
        char peer[64];
        log_info(broker_log(b), "client %s taken over by %s", id, conn_peer(c, peer, sizeof(peer)));
        mqtt_close(session_conn(old), MQTT_ERR_TAKEN_OVER);
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

/* CONNACK, accepted [MQTT-3.2.2]. To a v5 client it says what this server allows: the limits it
 * enforces and the features it has, and the client id it assigned. */
static int connect_send_connack(struct conn *c, bool present)
{
    if (!c->v5) {
        uint8_t ack[CODEC_CONNACK_SIZE];
        return conn_write(c, ack, codec_encode_connack(ack, present, MQTT_CONNACK_ACCEPTED));
    }
    const struct sol_config *cfg = broker_cfg(conn_broker(c));
    struct props_build pb = {0};
    struct props_values *v = &pb.v;
    v->has = 1ULL << PROP_RECEIVE_MAXIMUM | 1ULL << PROP_TOPIC_ALIAS_MAXIMUM |
             1ULL << PROP_RETAIN_AVAILABLE | 1ULL << PROP_WILDCARD_SUB_AVAILABLE |
             1ULL << PROP_SUBID_AVAILABLE | 1ULL << PROP_SHARED_SUB_AVAILABLE;
    /* Our Receive Maximum bounds the QoS 2 PUBLISHes a client leaves unreleased (QoS 1 is
     * acknowledged as it is read). */
    v->receive_maximum = cfg->max_inflight;
    v->topic_alias_maximum = CONN5_TOPIC_ALIAS_MAX;
    v->retain_available = 1;
    v->wildcard_sub_available = 1;
    v->subid_available = 1;
    v->shared_sub_available = 1;
    if (cfg->max_packet_size && cfg->max_packet_size < MQTT_MAX_REMAINING_LENGTH) {
        v->has |= 1ULL << PROP_MAXIMUM_PACKET_SIZE;
        v->maximum_packet_size = (uint32_t)cfg->max_packet_size;
    }
    if (cfg->max_qos < 2) {
        v->has |= 1ULL << PROP_MAXIMUM_QOS;
        v->maximum_qos = (uint8_t)cfg->max_qos;
    }
    if (c->connect->assigned) {
        v->has |= 1ULL << PROP_ASSIGNED_CLIENT_ID;
        v->assigned_client_id =
            (struct mqtt_str){c->connect->client_id, (uint16_t)strlen(c->connect->client_id)};
    }
    if (c->connect->server_keepalive) {
        v->has |= 1ULL << PROP_SERVER_KEEPALIVE;
        v->server_keepalive = c->keepalive;
    }
    char resp[CONN5_RESPONSE_MAX];
    if (c->connect->response_info) {
        int n = snprintf(resp, sizeof(resp), CONN5_RESPONSE_PREFIX "%s/", c->connect->client_id);
        if (n > 0 && (size_t)n < sizeof(resp)) {
            v->has |= 1ULL << PROP_RESPONSE_INFO;
            v->response_info = (struct mqtt_str){resp, (uint16_t)n};
        }
    }
    size_t n = codec_connack5_size(&pb);
    uint8_t *out = conn_reserve(c, n);
    if (!out)
        return -1;
    codec_encode_connack5(out, present, MQTT_RC_SUCCESS, &pb);
    conn_commit(c, n);
    return 0;
}

int connect_finish(struct conn *c)
{
    struct broker *b = conn_broker(c);
    struct broker_core *core = broker_core(b);
    struct conn_connect *cc = c->connect;
    size_t id_len = strlen(cc->client_id);
    struct session *s = session_get(b, cc->client_id, id_len);
    if (s && session_conn(s)) /* taken over while held */
        mqtt_close(session_conn(s), MQTT_ERR_TAKEN_OVER);
    s = session_get(b, cc->client_id, id_len);
    if (s && cc->clean) { /* [MQTT-3.1.2-6] a clean session discards the previous one */
        session_destroy(b, s);
        s = NULL;
    }
    bool present = s != NULL; /* [MQTT-3.2.2-1/2/3] */
    if (!s && !(s = session_create(b, cc->client_id, id_len, cc->expiry == 0)))
        return MQTT_ERR_NO_MEMORY;
    c->state = CONN_ACTIVE;
    c->session = s;
    session_attach(b, s, c, cc->username, cc->expiry == 0); /* the username moves to it */
    session_set_expiry(s, cc->expiry);
    cc->username = NULL;
    conn_mark_rx(c);
    core->stats.clients_connected++;
    if (core->stats.clients_connected > core->stats.clients_maximum)
        core->stats.clients_maximum = core->stats.clients_connected;
    if (connect_send_connack(c, present) < 0)
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
