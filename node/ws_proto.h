/*
 * ws_proto.h - the WebSocket protocol (RFC 6455) without sockets: the HTTP upgrade request checked
 * against a listener's policy and answered, and the frames of an upgraded connection decoded
 * (wslay) into the MQTT byte stream they carry, with the control frames they call for. Pure:
 * bytes in, bytes and MQTT data out through callbacks; transport_ws.c moves them, the fuzzer
 * drives them directly.
 */
#ifndef SOL_WS_PROTO_H
#define SOL_WS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest upgrade request (request line and headers) accepted. */
#define WS_MAX_HEADER 8192

/* What an upgrade request must satisfy (a listener's settings). */
struct ws_policy {
    const char *path;    /* the request's path (query string ignored), e.g. "/mqtt" */
    const char *origins; /* Origin allow-list, comma-separated, "" = any */
    bool trust_xff;      /* take the first X-Forwarded-For address */
};

/* The verdict on one upgrade request. */
struct ws_upgrade {
    int status;         /* 101, or the HTTP error to answer with: 400, 403, 404 */
    const char *why;    /* status != 101: for the log line, e.g. "no Sec-WebSocket-Key" */
    char key[64];       /* Sec-WebSocket-Key */
    char protocol[16];  /* the subprotocol chosen: "mqtt" or "mqttv3.1" */
    char forwarded[64]; /* trust_xff: the first X-Forwarded-For address if valid, else "" */
};

/* Bytes of the request's header block (through the blank line) at the start of buf, or 0 while
 * it is incomplete. */
size_t ws_header_end(const uint8_t *buf, size_t len);

/* Check a complete header block (len bytes, as ws_header_end measured) against p into u. */
void ws_upgrade_parse(const uint8_t *req, size_t len, const struct ws_policy *p,
                      struct ws_upgrade *u);

/* The HTTP response to u (101 with Sec-WebSocket-Accept, or the error) into buf: its length, or 0
 * when len is too small (512 bytes always do). */
size_t ws_upgrade_response(const struct ws_upgrade *u, char *buf, size_t len);

/* Where a decoder's output goes (ctx is the decoder's). */
struct ws_sink {
    /* Payload of binary frames, in order: the MQTT byte stream. */
    void (*data)(void *ctx, const uint8_t *p, size_t n);
    /* Bytes to send to the peer (pong, close): all of them are taken, or -1 (out of memory). */
    int (*out)(void *ctx, const uint8_t *p, size_t n);
};

struct ws_frames;

/* A decoder for a server's side of a connection: frames over max_frame bytes are refused. NULL
 * when out of memory. */
struct ws_frames *ws_frames_new(uint64_t max_frame, const struct ws_sink *sink, void *ctx);
void ws_frames_free(struct ws_frames *f);

/* Decode n bytes (all are taken). 0 while the connection goes on; 1 when it is over (the close
 * handshake, or a refused frame: unmasked, text, too big, malformed), with why set and the close
 * frame already passed to sink->out; -1 on an internal error (why set). */
int ws_frames_input(struct ws_frames *f, const uint8_t *p, size_t n, const char **why);

/* Whether a close frame was sent already (else closing the connection sends one). */
bool ws_frames_close_sent(const struct ws_frames *f);

/* The header of an unmasked binary frame of len bytes into hdr: its length (2..10). */
size_t ws_frame_header(uint8_t hdr[10], uint64_t len);

#endif
