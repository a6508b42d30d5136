/*
 * persist.h - what of the broker is kept in the durable store (store.h), and when: retained
 * messages and persistent sessions (their complete snapshot, session.h), written in the loop
 * turn they change, and the acknowledgements that must wait for that write.
 *
 * Records: "r" + topic -> a retained message; "s" + client id -> a persistent session's snapshot
 * (subscriptions with options and identifiers, expiry interval, outbound messages with their ids
 * and states in re-send order, the queue, inbound QoS 2 ids, the next id). A session changed in a
 * turn is written once at the turn's end, however often it changed.
 *
 * Write-ahead acknowledgement (--durability sync): a PUBACK/PUBREC whose PUBLISH changed durable
 * state is held until the batch of its turn is durable; a later acknowledgement to the same
 * connection waits behind it, keeping their order [MQTT-4.6.0-2]. Clean sessions and QoS 0 never
 * touch the disk. All on the loop thread.
 */
#ifndef SOL_PERSIST_H
#define SOL_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct broker;
struct conn;
struct message;
struct session;

/* Open the store the configuration names and restore everything in it (before any listener
 * opens). 0, or -1 with one line in err naming the directory. Durability none: nothing opened. */
int persist_open(struct broker *b, char *err, size_t errlen);
/* Write what is pending and close the store (the broker's last step). */
void persist_close(struct broker *b);
/* Whether a store is open. */
bool persist_on(const struct broker *b);

/* s changed: a persistent one is written at the end of this turn. */
void persist_session_changed(struct broker *b, struct session *s);
/* s is being destroyed: its record goes. */
void persist_session_gone(struct broker *b, struct session *s);
/* A retained message was set (msg) or cleared (msg NULL) for topic. */
void persist_retained(struct broker *b, const char *topic, size_t len, struct message *msg);
/* End of a loop turn: write the changed sessions into the batch and hand it to the writer. */
void persist_turn_end(struct broker *b);

/* Send an acknowledgement of a PUBLISH from c now or, when durable state is pending and the mode
 * is sync, once it is written. send(c, type, id, reason) sends it. 0 or -1 (no memory). */
typedef int (*persist_ack_fn)(struct conn *c, uint8_t type, uint16_t id, uint8_t reason);
int persist_ack(struct broker *b, struct conn *c, uint8_t type, uint16_t id, uint8_t reason,
                persist_ack_fn send);
/* c closes: its held acknowledgements are forgotten (the client sends the PUBLISH again). */
void persist_conn_gone(struct broker *b, struct conn *c);

#endif
