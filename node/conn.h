/*
 * conn.h - MQTT client connections: the whole face of the connection module (conn.c: buffers,
 * output and back-pressure; mqtt.c: parse, dispatch and the close for an error; keepalive.c:
 * the sweep; handle_*.c: one handler per packet type). Under it, transport.h carries the bytes.
 *
 * Ownership: struct conns (kept by the broker) owns the listeners and every connection, from
 * accept until its transport has closed. A connection points at its session while attached (from
 * CONNACK: session.h) and the session back at it. Counts into the broker's stats: connections,
 * clients_connected/maximum, bytes, msgs_sent/received, protocol_errors, conns_memory_closed.
 * All on the broker's loop thread.
 */
#ifndef SOL_CONN_H
#define SOL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "flow.h"
#include "message.h"
#include "transport.h"

struct broker;
struct conn;
struct conns;

/* ---- All connections (broker.c) ---- */

/* An empty set for b, listening nowhere yet; NULL when out of memory. */
struct conns *conns_new(struct broker *b);
/* Free the set: conns_shutdown's done has run (or nothing was ever accepted). */
void conns_free(struct conns *cs);
/* Start the listeners (transport.h: listeners_start says what err holds). 0 or -1. */
int conns_listen(struct conns *cs, const struct listener_config *cfg, size_t n, char *err,
                 size_t errlen);
/* SIGHUP: the TLS listeners load their certificates again (transport.h: listeners_reload). */
int conns_reload(struct conns *cs, char *err, size_t errlen);
bool conns_listening(const struct conns *cs);
/* Check phase, once per loop turn: write out every connection's coalesced output. */
void conns_flush(struct conns *cs);
/* Periodic (keepalive.c): keepalive and CONNECT timeouts, idle buffers given back, stalled
 * subscribers found. */
void conns_sweep(struct conns *cs);
/* The cluster finished its part of a held CONNECT (broker_connect_resume): finish it and read
 * what the client sent meanwhile. A token no longer held is ignored. */
void conns_resume_held(struct conns *cs, uint64_t token);
/* Stop accepting, flush, close every connection (wills published); done(ctx) once the listeners
 * and every connection have closed. MQTT 5 clients are told: DISCONNECT 0x9C with server_ref as
 * the Server Reference when there is one, else 0x8B [MQTT-4.13.2-1]. */
void conns_shutdown(struct conns *cs, const char *server_ref, void (*done)(void *ctx), void *ctx);
/* Bytes held in connections' input and output buffers (counted against max-conn-memory). */
size_t conns_buffer_bytes(const struct conns *cs);

/* ---- One connection (session.c, broker.c) ---- */

/* Close: publish the will unless the client sent DISCONNECT [MQTT-3.1.2-8], detach the session,
 * push out what is pending, and free it once the transport has closed. why: for the debug log,
 * NULL when the caller logged already. A closing connection ignores it. */
void conn_close(struct conn *c, const char *why);
/* Append one PUBLISH of msg (its shared encoding with this delivery's flags and id) to this turn's
 * output. -1 if not sent: not active, or its output cannot grow (then it takes no more and is
 * closed at this turn's flush: never closed here, as this runs inside routing passes and queue
 * drains). */
int conn_send_publish(struct conn *c, struct message *msg, uint8_t qos, uint16_t id, bool dup,
                      bool retain);
/* Whether a PUBLISH of msg at qos is within the client's MQTT 5 Maximum Packet Size; one that is
 * not is never sent to it [MQTT-3.1.2-24] (always true for 3.1.1). */
bool conn_publish_fits(struct conn *c, const struct message *msg, uint8_t qos);
/* The client's Receive Maximum: QoS 1/2 PUBLISHes it takes unacknowledged (65,535 for 3.1.1,
 * where max-inflight alone bounds the window) [MQTT-3.3.4-9]. */
uint16_t conn_receive_max(const struct conn *c);
/* Append a PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK; -1 as conn_send_publish. */
int conn_send_ack(struct conn *c, enum mqtt_type type, uint16_t id);
/* Unsent output: this turn's buffer plus what an unfinished write still holds. */
size_t conn_backlog(const struct conn *c);
/* The connection as a publisher (flow.h): what a full subscriber pauses. */
struct flow_source *conn_flow_source(struct conn *c);

#endif
