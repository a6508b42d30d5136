#!/usr/bin/env python3
"""Generate docs/conformance.md: every MQTT 3.1.1 normative statement -> the integration tests
that cite it (found by scanning tests/integration/test_*.py for "[MQTT-x.x.x-y]"), or why none.

Usage:
  conformance_table.py            write docs/conformance.md
  conformance_table.py --check    exit 1 if the committed doc is stale, a statement has neither
                                  a test nor a reason, a cited statement keeps a reason, or a
                                  test cites an id that is no statement
  conformance_table.py --prune    first drop from REASONS below the entries of statements that
                                  tests now cite, then write docs/conformance.md
"""
import os
import re
import sys

from conformance_common import (REPO, problems, prune_reasons, render, scan_tests,
                                write_or_check)

DOC = os.path.join(REPO, "docs", "conformance.md")
ID_RE = re.compile(r"\[?MQTT-(\d+\.\d+\.\d+-\d+)\]?")

# (id, who it binds: S = server, B = both, C = client only, summary)
STATEMENTS = [
    ("1.5.3-1", "B", "ill-formed UTF-8 (incl. surrogates) -> close"),
    ("1.5.3-2", "B", "U+0000 in a string -> close"),
    ("1.5.3-3", "B", "U+FEFF (EF BB BF) not skipped or stripped"),
    ("2.2.2-1", "B", "reserved fixed-header flags have the listed values"),
    ("2.2.2-2", "B", "invalid fixed-header flags -> close"),
    ("2.3.1-1", "B", "SUBSCRIBE, UNSUBSCRIBE, PUBLISH QoS>0 carry a non-zero packet id"),
    ("2.3.1-2", "C", "client assigns a currently unused packet id"),
    ("2.3.1-3", "C", "client re-sends with the same packet id; reuse after the ack"),
    ("2.3.1-4", "S", "same packet id rules for server-sent PUBLISH QoS>0"),
    ("2.3.1-5", "B", "PUBLISH QoS 0 has no packet id"),
    ("2.3.1-6", "B", "PUBACK/PUBREC/PUBREL carry the PUBLISH's packet id"),
    ("2.3.1-7", "S", "SUBACK/UNSUBACK carry the SUBSCRIBE/UNSUBSCRIBE's packet id"),
    ("3.1.0-1", "B", "first packet from the client is CONNECT"),
    ("3.1.0-2", "S", "second CONNECT is a protocol violation -> close"),
    ("3.1.2-1", "S", "wrong protocol name: may close; must not go on as 3.1.1"),
    ("3.1.2-2", "S", "unsupported protocol level -> CONNACK 0x01, close"),
    ("3.1.2-3", "S", "CONNECT reserved flag must be 0, else close"),
    ("3.1.2-4", "S", "CleanSession 0: resume/create session, keep it after disconnect"),
    ("3.1.2-5", "S", "store QoS 1/2 messages for a disconnected CleanSession 0 session"),
    ("3.1.2-6", "S", "CleanSession 1: discard previous session, state not reused"),
    ("3.1.2-7", "S", "retained messages are not deleted when a session ends"),
    ("3.1.2-8", "S", "will stored and published when the connection closes without DISCONNECT"),
    ("3.1.2-9", "B", "Will Flag 1: Will Topic and Will Message present"),
    ("3.1.2-10", "S", "will removed once published or on DISCONNECT"),
    ("3.1.2-11", "B", "Will Flag 0: Will QoS/Retain 0, no will fields"),
    ("3.1.2-12", "S", "Will Flag 0: no will published"),
    ("3.1.2-13", "B", "Will Flag 0: Will QoS 0"),
    ("3.1.2-14", "B", "Will QoS is 0, 1 or 2, never 3"),
    ("3.1.2-15", "B", "Will Flag 0: Will Retain 0"),
    ("3.1.2-16", "S", "Will Retain 0: will published non-retained"),
    ("3.1.2-17", "S", "Will Retain 1: will published retained"),
    ("3.1.2-18", "B", "User Name flag 0: no user name"),
    ("3.1.2-19", "B", "User Name flag 1: user name present"),
    ("3.1.2-20", "B", "Password flag 0: no password"),
    ("3.1.2-21", "B", "Password flag 1: password present"),
    ("3.1.2-22", "B", "User Name flag 0 -> Password flag 0"),
    ("3.1.2-23", "C", "client sends a packet within the keepalive"),
    ("3.1.2-24", "S", "no packet within 1.5x keepalive -> server disconnects"),
    ("3.1.3-1", "B", "payload fields in order: id, will topic, will message, user, password"),
    ("3.1.3-2", "S", "client id identifies the session state"),
    ("3.1.3-3", "B", "client id present, first payload field"),
    ("3.1.3-4", "B", "client id is UTF-8"),
    ("3.1.3-5", "S", "server allows 1-23 byte [0-9a-zA-Z] client ids"),
    ("3.1.3-6", "S", "zero-length client id: server assigns a unique one"),
    ("3.1.3-7", "C", "zero-length client id requires CleanSession 1 (client side)"),
    ("3.1.3-8", "S", "zero-length client id with CleanSession 0 -> CONNACK 0x02, close"),
    ("3.1.3-9", "S", "rejected client id -> CONNACK 0x02, close"),
    ("3.1.3-10", "B", "Will Topic is UTF-8"),
    ("3.1.3-11", "B", "User Name is UTF-8"),
    ("3.1.4-1", "S", "invalid CONNECT -> close without CONNACK"),
    ("3.1.4-2", "S", "client id already connected -> disconnect the existing client"),
    ("3.1.4-3", "S", "perform CleanSession processing"),
    ("3.1.4-4", "S", "accept with CONNACK 0x00"),
    ("3.1.4-5", "S", "rejected CONNECT: no processing of data after it"),
    ("3.2.0-1", "S", "first packet from the server is CONNACK"),
    ("3.2.2-1", "S", "CleanSession 1 -> session present 0"),
    ("3.2.2-2", "S", "CleanSession 0 with stored session -> session present 1"),
    ("3.2.2-3", "S", "CleanSession 0 without stored session -> session present 0"),
    ("3.2.2-4", "S", "non-zero return code -> session present 0"),
    ("3.2.2-5", "S", "non-zero return code -> close"),
    ("3.2.2-6", "S", "no applicable return code -> close without CONNACK"),
    ("3.3.1-1", "B", "DUP 1 on re-delivery"),
    ("3.3.1-2", "B", "DUP 0 for QoS 0"),
    ("3.3.1-3", "S", "incoming DUP not propagated"),
    ("3.3.1-4", "B", "PUBLISH with QoS bits 11 -> close"),
    ("3.3.1-5", "S", "RETAIN 1: store message and QoS"),
    ("3.3.1-6", "S", "new subscription gets the matching retained messages"),
    ("3.3.1-7", "S", "retained QoS 0 replaces the previous retained message"),
    ("3.3.1-8", "S", "RETAIN 1 when sent because of a new subscription"),
    ("3.3.1-9", "S", "RETAIN 0 when sent to an established subscription"),
    ("3.3.1-10", "S", "empty retained payload: forwarded, retained message removed"),
    ("3.3.1-11", "S", "empty retained message not stored"),
    ("3.3.1-12", "S", "RETAIN 0: not stored, existing retained untouched"),
    ("3.3.2-1", "B", "topic name present, UTF-8"),
    ("3.3.2-2", "B", "no wildcards in topic names"),
    ("3.3.2-3", "S", "delivered topic name matches the subscription filter"),
    ("3.3.4-1", "B", "PUBLISH answered as its QoS requires"),
    ("3.3.5-1", "S", "overlapping subscriptions: deliver at the maximum QoS"),
    ("3.3.5-2", "S", "unauthorised PUBLISH: positive ack or close"),
    ("3.6.1-1", "B", "PUBREL fixed-header flags 0010, else close"),
    ("3.8.1-1", "S", "SUBSCRIBE fixed-header flags 0010, else close"),
    ("3.8.3-1", "B", "topic filters are UTF-8"),
    ("3.8.3-2", "S", "wildcards unsupported -> reject such filters"),
    ("3.8.3-3", "B", "SUBSCRIBE has at least one filter/QoS pair"),
    ("3.8.3-4", "S", "reserved bits or QoS 3 in SUBSCRIBE payload -> close"),
    ("3.8.4-1", "S", "SUBSCRIBE answered by SUBACK"),
    ("3.8.4-2", "S", "SUBACK has the SUBSCRIBE's packet id"),
    ("3.8.4-3", "S", "identical filter replaces the subscription; retained re-sent"),
    ("3.8.4-4", "S", "several filters handled as a sequence, one SUBACK"),
    ("3.8.4-5", "S", "one SUBACK return code per filter"),
    ("3.8.4-6", "S", "delivery QoS is min(published, granted)"),
    ("3.9.3-1", "S", "SUBACK codes in the order of the filters"),
    ("3.9.3-2", "S", "only 0x00, 0x01, 0x02, 0x80 as SUBACK codes"),
    ("3.10.1-1", "S", "UNSUBSCRIBE fixed-header flags 0010, else close"),
    ("3.10.3-1", "B", "UNSUBSCRIBE filters are UTF-8"),
    ("3.10.3-2", "B", "UNSUBSCRIBE has at least one filter"),
    ("3.10.4-1", "S", "filters compared character by character; match deleted"),
    ("3.10.4-2", "S", "no new messages for a deleted subscription"),
    ("3.10.4-3", "S", "QoS 1/2 deliveries already started are completed"),
    ("3.10.4-4", "S", "UNSUBSCRIBE answered by UNSUBACK"),
    ("3.10.4-5", "S", "UNSUBACK has the packet id, even if nothing was deleted"),
    ("3.10.4-6", "S", "several filters, one UNSUBACK"),
    ("3.12.4-1", "S", "PINGREQ answered by PINGRESP"),
    ("3.14.1-1", "S", "DISCONNECT flags 0000, else close"),
    ("3.14.4-1", "C", "client closes the connection after DISCONNECT"),
    ("3.14.4-2", "C", "client sends nothing after DISCONNECT"),
    ("3.14.4-3", "S", "DISCONNECT: will discarded, not published"),
    ("4.1.0-1", "B", "session state stored for the whole session"),
    ("4.1.0-2", "B", "session lasts at least as long as the network connection"),
    ("4.3.1-1", "B", "QoS 0 sender: QoS 0, DUP 0"),
    ("4.3.2-1", "B", "QoS 1 sender: fresh id, DUP 0, unacked until PUBACK"),
    ("4.3.2-2", "B", "QoS 1 receiver: PUBACK with the id; later same id is new"),
    ("4.3.3-1", "B", "QoS 2 sender: PUBLISH, PUBREC->PUBREL, PUBCOMP; no re-send after PUBREL"),
    ("4.3.3-2", "B", "QoS 2 receiver: PUBREC; no duplicate delivery before PUBREL; PUBCOMP"),
    ("4.4.0-1", "B", "reconnect with CleanSession 0: re-send unacked PUBLISH and PUBREL"),
    ("4.5.0-1", "S", "accepted message added to every matching session"),
    ("4.5.0-2", "C", "client acknowledges every PUBLISH per its QoS"),
    ("4.6.0-1", "C", "client re-sends PUBLISH in the original order"),
    ("4.6.0-2", "C", "client sends PUBACK in the order PUBLISHes arrived"),
    ("4.6.0-3", "C", "client sends PUBREC in the order PUBLISHes arrived"),
    ("4.6.0-4", "C", "client sends PUBREL in the order PUBRECs arrived"),
    ("4.6.0-5", "S", "topics are ordered topics by default"),
    ("4.6.0-6", "S", "ordered delivery of one client's messages to each subscriber"),
    ("4.7.1-1", "B", "wildcards only in filters, never in topic names"),
    ("4.7.1-2", "B", "'#' alone in its level and last"),
    ("4.7.1-3", "B", "'+' occupies an entire level"),
    ("4.7.2-1", "S", "leading wildcard does not match topics starting with '$'"),
    ("4.7.3-1", "B", "topic names and filters at least one character"),
    ("4.7.3-2", "B", "no U+0000 in topic names and filters"),
    ("4.7.3-3", "B", "topic names and filters at most 65535 bytes"),
    ("4.7.3-4", "S", "no normalisation when matching"),
    ("4.8.0-1", "B", "protocol violation -> close"),
    ("4.8.0-2", "B", "transient error while processing -> close"),
    ("6.0.0-1", "B", "WebSocket: binary frames"),
    ("6.0.0-2", "B", "WebSocket: packets not aligned with frames"),
    ("6.0.0-3", "C", "WebSocket: client offers the 'mqtt' subprotocol"),
    ("6.0.0-4", "S", "WebSocket: server selects the 'mqtt' subprotocol"),
]

# Statements no integration test cites, and why.
REASONS = {
    "3.1.2-23": "Client obligation; the server side is [MQTT-3.1.2-24].",
    "3.1.3-7": "Client obligation; the server side is [MQTT-3.1.3-8].",
    "3.14.4-1": "Client obligation.",
    "3.14.4-2": "Client obligation.",
    "4.5.0-2": "Client obligation (the server's own acknowledgements are [MQTT-3.3.4-1]).",
    "4.6.0-1": "Client obligation.",
    "4.6.0-3": "Client obligation.",
    "4.6.0-4": "Client obligation.",
    "4.8.0-2": "Transient internal errors (e.g. allocation failure) cannot be provoked from "
               "outside the process by an integration test.",
    "6.0.0-3": "Client obligation (Sol refuses an upgrade without it: test_ws.py).",
}

HEAD = [
    "# MQTT 3.1.1 conformance: normative statements and the tests that cite them\n",
    "Generated by `tests/integration/conformance_table.py` from the `[MQTT-x.x.x-y]` ids "
    "cited in `tests/integration/test_*.py` (run it after changing tests; "
    "`--check` verifies this file is current). \"Binds\" says who the statement "
    "constrains: server, both, or client only. Every statement that binds a server is "
    "cited by at least one integration test or has a reason below. MQTT 5.0 has its own "
    "table: [conformance-mqtt5.md](conformance-mqtt5.md).\n",
    "The suite runs against Sol (`make integration`) and, to validate the tests "
    "themselves, against Mosquitto 2.0 (`SOL_TEST_BROKER=mosquitto /usr/bin/python3 -m "
    "pytest tests/integration`). Where Mosquitto deviates, the test is marked "
    "`mosquitto_xfail` with the reason (see \"Known Mosquitto deviations\").\n",
]

TAIL = """
## Behaviour choices documented here

- **Wills on broker shutdown.** On SIGTERM/SIGINT the broker closes every client connection
  itself; no DISCONNECT was received on those connections, so by [MQTT-3.1.2-8] their wills are
  published (to subscribers still connected at that moment) before the connections close, as
  Mosquitto 2.0 does. Clients that sent DISCONNECT have no will ([MQTT-3.14.4-3]). Exit code 0.
  Test: `test_cli::test_sigterm_publishes_wills_of_connected_clients`.
- **Invalid topic filters** in SUBSCRIBE either close the connection or get return code 0x80;
  the tests accept both (the spec makes it a protocol violation; 0x80 is the gentler choice).
- **QoS 0 PUBLISH with DUP=1** is either refused (close) or delivered with DUP=0.
- **Keepalive:** closed no earlier than 1x and no later than 1.5x keepalive plus scheduling slack.

## Known Mosquitto 2.0.11 deviations (tests xfail under Mosquitto only)

- Keepalive is checked coarsely (keepalive 1 s closes after ~4.6 s).
- A QoS 2 PUBLISH re-sent more than once before PUBREL closes the connection.
- Overlapping subscriptions produce one copy per subscription (not one at the maximum QoS).
- A wrong password gets CONNACK 0x05, not 0x04.
- SUBSCRIBEs denied by the ACL are granted (reads are filtered at delivery) instead of 0x80.
- `max_inflight_messages N` releases two messages per PUBACK (N+1 in flight).
- SUBACK/UNSUBACK/PINGRESP from a client, non-zero flags on PUBACK/PUBREC/PUBCOMP/PINGREQ and
  surplus bytes in PUBACK/PUBREL/PINGREQ are accepted instead of closing the connection.
"""


def main(argv=None):
    cites, stray = scan_tests(ID_RE)
    if "--prune" in (sys.argv[1:] if argv is None else argv):
        for sid in prune_reasons(os.path.abspath(__file__), REASONS, cites):
            print(f"conformance: dropped the reason of MQTT-{sid}: a test cites it")
    text, _ = render(HEAD, STATEMENTS, REASONS, cites, "MQTT-", TAIL)
    return write_or_check(DOC, text, problems(STATEMENTS, REASONS, cites, stray, "MQTT-"), argv)


if __name__ == "__main__":
    sys.exit(main())
