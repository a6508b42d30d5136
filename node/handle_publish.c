/*
 * handle_publish.c - PUBLISH from a client: QoS 0/1/2 inbound flows, ACL, retained messages,
 * routing.
 *
 * Inbound QoS 2 uses the spec's "method B": the message is delivered on first receipt and its
 * packet id is remembered until PUBREL, so a re-sent PUBLISH (DUP) is acknowledged again but never
 * delivered twice [MQTT-4.3.3-2].
 */
#include "conn_int.h"

int handle_publish(struct conn *c, const struct mqtt_publish *p)
{
    struct broker *b = conn_broker(c);
    struct broker_core *core = broker_core(b);
    struct session *s = c->session;
    if (p->qos > core->cfg.max_qos) /* as Mosquitto's max_qos: 3.1.1 cannot refuse it politely */
        return MQTT_ERR_QOS;
    core->stats.msgs_received++;
    bool duplicate = p->qos == 2 && session_rx_qos2_has(s, p->packet_id);
    if (!duplicate && broker_acl_allows(b, s, p->topic.data, p->topic.len, ACL_WRITE)) {
        /* A subscriber (or peer) this feeds that is behind pauses this connection (flow.h). */
        broker_flow_enter(b, &c->flow);
        int rc = broker_publish_packet(b, p->topic.data, p->topic.len, p->payload, p->payload_len,
                                       p->qos, p->retain);
        broker_flow_leave(b);
        if (rc < 0)
            return MQTT_ERR_NO_MEMORY;
    }
    /* A denied PUBLISH is still acknowledged: 3.1.1 has no way to refuse one. */
    int rc = 0;
    if (p->qos == 1) {
        rc = conn_send_ack(c, MQTT_PUBACK, p->packet_id); /* [MQTT-4.3.2-2] */
    } else if (p->qos == 2) {
        if (!duplicate && session_rx_qos2_add(s, p->packet_id) < 0)
            return MQTT_ERR_NO_MEMORY;
        rc = conn_send_ack(c, MQTT_PUBREC, p->packet_id); /* [MQTT-4.3.3-2] */
    }
    return rc < 0 ? MQTT_ERR_NO_MEMORY : MQTT_OK;
}
