#!/usr/bin/env python3
"""Generate docs/conformance-mqtt5.md: every MQTT 5.0 normative statement -> the integration
tests that cite it (found by scanning tests/integration/test_*.py for "[MQTT5-x.x.x-y]"), or why
none.

Usage:
  conformance5_table.py            write docs/conformance-mqtt5.md
  conformance5_table.py --check    exit 1 if the committed doc is stale, a statement has neither
                                   a test nor a reason, a cited statement keeps a reason, or a
                                   test file cites an MQTT5- id that is no statement (or
                                   a test_mqtt5*.py file cites a 3.1.1 MQTT- id)
  conformance5_table.py --prune    first drop from REASONS below the entries of statements that
                                   tests now cite, then write docs/conformance-mqtt5.md: the one
                                   command to run after merging new MQTT 5 tests

The statements are the numbered conformance statements of MQTT Version 5.0, OASIS Standard,
7 March 2019 (Appendix B), under the standard's numbers. Tests cite them with the prefix MQTT5-
so that they never collide with the 3.1.1 ids of conformance_table.py.
"""
import os
import re
import sys

from conformance_common import (HERE, REPO, problems, prune_reasons, render, scan_tests,
                                read_test_files, write_or_check)

DOC = os.path.join(REPO, "docs", "conformance-mqtt5.md")
# Anything that looks like an MQTT5- id is read, so that a malformed one ("[MQTT5-3.1.2]",
# "[MQTT5-4.2-1]") is reported as unknown instead of being skipped.
ID_RE = re.compile(r"MQTT5-([0-9][0-9.\-]*[0-9])")
V311_RE = re.compile(r"MQTT-(\d+\.\d+\.\d+-\d+)")

# (id, who it binds: S = server, B = both, C = client only, summary). "Both" includes what the
# client must do where the server has to detect a breach as a Malformed Packet or Protocol
# Error. MQTT-4.2.0-1 is tagged [MQTT-4.2-1] in the standard's body, and MQTT-3.2.2-8's tag is
# cut short there; both are listed under Appendix B's ids.
STATEMENTS = [
    ("1.5.4-1", "B", "UTF-8 strings well-formed, no U+D800..U+DFFF (else Malformed Packet)"),
    ("1.5.4-2", "B", "no U+0000 in a UTF-8 string (else Malformed Packet)"),
    ("1.5.4-3", "B", "U+FEFF (EF BB BF) not skipped or stripped by the receiver"),
    ("1.5.5-1", "B", "Variable Byte Integer uses the minimum number of bytes"),
    ("1.5.7-1", "B", "both strings of a UTF-8 String Pair are valid UTF-8 strings"),
    ("2.1.3-1", "B", "reserved fixed-header flags have the listed values (else Malformed Packet)"),
    ("2.2.1-2", "B", "PUBLISH QoS 0 has no packet id"),
    ("2.2.1-3", "B", "client gives each new SUBSCRIBE/UNSUBSCRIBE/PUBLISH QoS>0 an unused non-zero "
                     "id"),
    ("2.2.1-4", "S", "server gives each new PUBLISH QoS>0 an unused non-zero id"),
    ("2.2.1-5", "B", "PUBACK/PUBREC/PUBREL/PUBCOMP carry the PUBLISH's packet id"),
    ("2.2.1-6", "S", "SUBACK/UNSUBACK carry the SUBSCRIBE/UNSUBSCRIBE's packet id"),
    ("2.2.2-1", "B", "no properties: Property Length 0 is present"),
    ("3.1.0-1", "B", "first packet from the client is CONNECT"),
    ("3.1.0-2", "S", "second CONNECT is a Protocol Error -> close"),
    ("3.1.2-1", "S", "protocol name not \"MQTT\": may CONNACK 0x84, then close"),
    ("3.1.2-2", "S", "protocol version not 5 and refused: may CONNACK 0x84, then close"),
    ("3.1.2-3", "S", "server validates the CONNECT reserved flag is 0 (else Malformed Packet)"),
    ("3.1.2-4", "B", "Clean Start 1: discard any existing session, start a new one"),
    ("3.1.2-5", "S", "Clean Start 0 with a session: resume from its state"),
    ("3.1.2-6", "S", "Clean Start 0 without a session: create a new one"),
    ("3.1.2-7", "S", "Will Flag 1: will stored with the session"),
    ("3.1.2-8", "S", "will published after close once Will Delay elapses or the session ends, "
                     "unless DISCONNECT 0x00 or a reconnect came first"),
    ("3.1.2-9", "B", "Will Flag 1: Will Properties, Will Topic and Will Payload present"),
    ("3.1.2-10", "S", "will removed once published or on DISCONNECT 0x00"),
    ("3.1.2-11", "B", "Will Flag 0: Will QoS 0"),
    ("3.1.2-12", "B", "Will Flag 1: Will QoS 0, 1 or 2 (3 is malformed)"),
    ("3.1.2-13", "B", "Will Flag 0: Will Retain 0"),
    ("3.1.2-14", "S", "Will Retain 0: will published non-retained"),
    ("3.1.2-15", "S", "Will Retain 1: will published retained"),
    ("3.1.2-16", "B", "User Name Flag 0: no User Name"),
    ("3.1.2-17", "B", "User Name Flag 1: User Name present"),
    ("3.1.2-18", "B", "Password Flag 0: no Password"),
    ("3.1.2-19", "B", "Password Flag 1: Password present"),
    ("3.1.2-20", "C", "client sends PINGREQ when Keep Alive is non-zero and nothing else is sent"),
    ("3.1.2-21", "C", "client uses the Server Keep Alive from CONNACK"),
    ("3.1.2-22", "S", "no packet within 1.5x Keep Alive -> server closes as if the network failed"),
    ("3.1.2-23", "B", "Session Expiry Interval > 0: session state kept after the connection "
                      "closes"),
    ("3.1.2-24", "S", "server never sends a packet larger than the client's Maximum Packet Size"),
    ("3.1.2-25", "S", "packet too large to send: discarded, treated as sent"),
    ("3.1.2-26", "S", "server sends no Topic Alias above the client's Topic Alias Maximum"),
    ("3.1.2-27", "S", "Topic Alias Maximum absent or 0: server sends no Topic Aliases"),
    ("3.1.2-28", "S", "Request Response Information 0: no Response Information returned"),
    ("3.1.2-29", "S", "Request Problem Information 0: Reason String/User Properties only on "
                      "PUBLISH, CONNACK, DISCONNECT"),
    ("3.1.2-30", "C", "client with an Authentication Method sends only AUTH/DISCONNECT before "
                      "CONNACK"),
    ("3.1.3-1", "B", "payload fields in order: ClientID, Will Properties, Will Topic, Will "
                     "Payload, User Name, Password"),
    ("3.1.3-2", "B", "ClientID identifies the session state held by client and server"),
    ("3.1.3-3", "B", "ClientID present, first payload field"),
    ("3.1.3-4", "B", "ClientID is a UTF-8 Encoded String"),
    ("3.1.3-5", "S", "server allows 1-23 byte [0-9a-zA-Z] ClientIDs"),
    ("3.1.3-6", "S", "zero-length ClientID allowed: server assigns a unique one"),
    ("3.1.3-7", "S", "assigned ClientID used for the CONNECT and returned as Assigned Client "
                     "Identifier"),
    ("3.1.3-8", "S", "rejected ClientID: may CONNACK 0x85, then close"),
    ("3.1.3-9", "S", "new connection to the session before the Will Delay Interval: will not sent"),
    ("3.1.3-10", "S", "order of will User Properties kept when the will is published"),
    ("3.1.3-11", "B", "Will Topic is a UTF-8 Encoded String"),
    ("3.1.3-12", "B", "User Name is a UTF-8 Encoded String"),
    ("3.1.4-1", "S", "CONNECT not matching the format -> close"),
    ("3.1.4-2", "S", "further checks or authentication/authorization fail -> close"),
    ("3.1.4-3", "S", "ClientID already connected: DISCONNECT 0x8E to the existing client, close "
                     "it"),
    ("3.1.4-4", "S", "perform Clean Start processing"),
    ("3.1.4-5", "S", "accept with CONNACK 0x00"),
    ("3.1.4-6", "S", "rejected CONNECT: no data after it processed except AUTH"),
    ("3.2.0-1", "S", "CONNACK 0x00 before any packet other than AUTH"),
    ("3.2.0-2", "S", "at most one CONNACK per connection"),
    ("3.2.2-1", "S", "CONNACK acknowledge flags bits 7-1 are 0"),
    ("3.2.2-2", "S", "Clean Start 1 accepted: Session Present 0, reason 0x00"),
    ("3.2.2-3", "S", "Clean Start 0 accepted: Session Present 1 iff a session was held; reason "
                     "0x00"),
    ("3.2.2-4", "C", "client without session state gets Session Present 1 -> close"),
    ("3.2.2-5", "C", "client with session state gets Session Present 0 -> discard its state"),
    ("3.2.2-6", "S", "non-zero CONNACK reason code -> Session Present 0"),
    ("3.2.2-7", "S", "CONNACK reason code >= 0x80 -> close"),
    ("3.2.2-8", "S", "CONNACK uses only Connect Reason Code values"),
    ("3.2.2-9", "S", "server without QoS 1/2 support sends Maximum QoS"),
    ("3.2.2-10", "S", "server without QoS 1/2 support still accepts SUBSCRIBE with QoS 0, 1, 2"),
    ("3.2.2-11", "B", "client sends no PUBLISH above the server's Maximum QoS"),
    ("3.2.2-12", "S", "Will QoS beyond the server's capabilities -> reject (0x9B), close"),
    ("3.2.2-13", "S", "Will Retain 1 without retain support -> reject (0x9A), close"),
    ("3.2.2-14", "B", "Retain Available 0: client sends no RETAIN 1 PUBLISH"),
    ("3.2.2-15", "B", "client sends no packet above the server's Maximum Packet Size"),
    ("3.2.2-16", "S", "zero-length ClientID: CONNACK carries a new, unused Assigned Client "
                      "Identifier"),
    ("3.2.2-17", "B", "client sends no Topic Alias above the server's Topic Alias Maximum"),
    ("3.2.2-18", "B", "server Topic Alias Maximum absent or 0: client sends no Topic Aliases"),
    ("3.2.2-19", "S", "CONNACK Reason String not sent if it would exceed the client's Maximum "
                      "Packet Size"),
    ("3.2.2-20", "S", "CONNACK User Property not sent if it would exceed the client's Maximum "
                      "Packet Size"),
    ("3.2.2-21", "C", "client uses the Server Keep Alive instead of its own"),
    ("3.2.2-22", "S", "no Server Keep Alive sent: server uses the client's Keep Alive"),
    ("3.3.1-1", "B", "DUP 1 on re-delivery of a PUBLISH"),
    ("3.3.1-2", "B", "DUP 0 for QoS 0"),
    ("3.3.1-3", "S", "outgoing DUP set by retransmission only, incoming DUP not propagated"),
    ("3.3.1-4", "B", "PUBLISH never has both QoS bits set (Malformed Packet)"),
    ("3.3.1-5", "S", "RETAIN 1: replace the topic's retained message and store this one"),
    ("3.3.1-6", "S", "RETAIN 1 with empty payload: retained message removed"),
    ("3.3.1-7", "S", "empty retained payload not stored as a retained message"),
    ("3.3.1-8", "S", "RETAIN 0: not stored, existing retained message untouched"),
    ("3.3.1-9", "S", "Retain Handling 0: matching retained messages sent on subscribe"),
    ("3.3.1-10", "S", "Retain Handling 1: retained messages sent only if the subscription is new"),
    ("3.3.1-11", "S", "Retain Handling 2: no retained messages sent"),
    ("3.3.1-12", "S", "Retain As Published 0: forwarded with RETAIN 0"),
    ("3.3.1-13", "S", "Retain As Published 1: forwarded with the received RETAIN flag"),
    ("3.3.2-1", "B", "Topic Name present, first field, UTF-8 Encoded String"),
    ("3.3.2-2", "B", "no wildcards in a PUBLISH Topic Name"),
    ("3.3.2-3", "S", "Topic Name sent to a subscriber matches its Topic Filter"),
    ("3.3.2-4", "S", "Payload Format Indicator forwarded unaltered"),
    ("3.3.2-5", "S", "Message Expiry passed before onward delivery started: copy deleted"),
    ("3.3.2-6", "S", "forwarded Message Expiry Interval = received value minus time waited"),
    ("3.3.2-7", "B", "Topic Alias mappings not carried from one connection to another"),
    ("3.3.2-8", "B", "no PUBLISH with Topic Alias 0"),
    ("3.3.2-9", "B", "client sends no Topic Alias above the server's Topic Alias Maximum"),
    ("3.3.2-10", "C", "client accepts every Topic Alias from 1 to its Topic Alias Maximum"),
    ("3.3.2-11", "S", "server sends no Topic Alias above the client's Topic Alias Maximum"),
    ("3.3.2-12", "S", "server accepts every Topic Alias from 1 to its Topic Alias Maximum"),
    ("3.3.2-13", "B", "Response Topic is a UTF-8 Encoded String"),
    ("3.3.2-14", "B", "Response Topic has no wildcards"),
    ("3.3.2-15", "S", "Response Topic forwarded unaltered"),
    ("3.3.2-16", "S", "Correlation Data forwarded unaltered"),
    ("3.3.2-17", "S", "all User Properties forwarded unaltered"),
    ("3.3.2-18", "S", "order of User Properties kept when forwarding"),
    ("3.3.2-19", "B", "Content Type is a UTF-8 Encoded String"),
    ("3.3.2-20", "S", "Content Type forwarded unaltered"),
    ("3.3.4-1", "B", "PUBLISH answered as its QoS requires"),
    ("3.3.4-2", "S", "overlapping subscriptions: delivered respecting the maximum QoS"),
    ("3.3.4-3", "S", "Subscription Identifiers of the matching subscriptions sent with the "
                     "message"),
    ("3.3.4-4", "S", "single copy: carries the Subscription Identifiers of all matching "
                     "subscriptions"),
    ("3.3.4-5", "S", "one copy per subscription: each carries that subscription's identifier"),
    ("3.3.4-6", "B", "PUBLISH from a client carries no Subscription Identifier"),
    ("3.3.4-7", "B", "client keeps at most Receive Maximum QoS 1/2 PUBLISHes unacknowledged"),
    ("3.3.4-8", "C", "client does not delay non-PUBLISH packets because of Receive Maximum"),
    ("3.3.4-9", "S", "server keeps at most the client's Receive Maximum QoS 1/2 PUBLISHes "
                     "unacknowledged"),
    ("3.3.4-10", "S", "server does not delay non-PUBLISH packets because of Receive Maximum"),
    ("3.4.2-1", "B", "PUBACK uses only PUBACK Reason Codes"),
    ("3.4.2-2", "B", "PUBACK Reason String not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.4.2-3", "B", "PUBACK User Property not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.5.2-1", "B", "PUBREC uses only PUBREC Reason Codes"),
    ("3.5.2-2", "B", "PUBREC Reason String not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.5.2-3", "B", "PUBREC User Property not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.6.1-1", "B", "PUBREL fixed-header flags 0010, else malformed -> close"),
    ("3.6.2-1", "B", "PUBREL uses only PUBREL Reason Codes"),
    ("3.6.2-2", "B", "PUBREL Reason String not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.6.2-3", "B", "PUBREL User Property not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.7.2-1", "B", "PUBCOMP uses only PUBCOMP Reason Codes"),
    ("3.7.2-2", "B", "PUBCOMP Reason String not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.7.2-3", "B", "PUBCOMP User Property not sent if it would exceed the receiver's Maximum "
                     "Packet Size"),
    ("3.8.1-1", "S", "SUBSCRIBE fixed-header flags 0010, else malformed -> close"),
    ("3.8.3-1", "B", "SUBSCRIBE Topic Filters are UTF-8 Encoded Strings"),
    ("3.8.3-2", "B", "SUBSCRIBE has at least one Topic Filter / Subscription Options pair"),
    ("3.8.3-3", "S", "No Local 1: not forwarded to the publishing ClientID"),
    ("3.8.3-4", "B", "No Local 1 on a Shared Subscription is a Protocol Error"),
    ("3.8.3-5", "S", "reserved Subscription Options bits non-zero -> malformed"),
    ("3.8.4-1", "S", "SUBSCRIBE answered by SUBACK"),
    ("3.8.4-2", "S", "SUBACK has the SUBSCRIBE's packet id"),
    ("3.8.4-3", "S", "identical non-shared Topic Filter replaces the existing subscription"),
    ("3.8.4-4", "S", "replaced with Retain Handling 0: retained re-sent, no messages lost"),
    ("3.8.4-5", "S", "several filters handled as a sequence of SUBSCRIBEs, one SUBACK"),
    ("3.8.4-6", "S", "one SUBACK Reason Code per filter"),
    ("3.8.4-7", "S", "SUBACK Reason Code is the granted QoS or a failure"),
    ("3.8.4-8", "S", "delivery QoS is min(published QoS, granted QoS)"),
    ("3.9.2-1", "S", "SUBACK Reason String not sent if it would exceed the client's Maximum Packet "
                     "Size"),
    ("3.9.2-2", "S", "SUBACK User Property not sent if it would exceed the client's Maximum Packet "
                     "Size"),
    ("3.9.3-1", "S", "SUBACK Reason Codes in the order of the Topic Filters"),
    ("3.9.3-2", "S", "SUBACK uses only Subscribe Reason Codes"),
    ("3.10.1-1", "S", "UNSUBSCRIBE fixed-header flags 0010, else malformed -> close"),
    ("3.10.3-1", "B", "UNSUBSCRIBE Topic Filters are UTF-8 Encoded Strings"),
    ("3.10.3-2", "B", "UNSUBSCRIBE has at least one Topic Filter"),
    ("3.10.4-1", "S", "filters compared character by character; an exact match is deleted"),
    ("3.10.4-2", "S", "no new messages added for a deleted subscription"),
    ("3.10.4-3", "S", "QoS 1/2 deliveries already started are completed"),
    ("3.10.4-4", "S", "UNSUBSCRIBE answered by UNSUBACK"),
    ("3.10.4-5", "S", "UNSUBACK has the packet id, even if nothing was deleted"),
    ("3.10.4-6", "S", "several filters handled as a sequence, one UNSUBACK"),
    ("3.11.2-1", "S", "UNSUBACK Reason String not sent if it would exceed the client's Maximum "
                      "Packet Size"),
    ("3.11.2-2", "S", "UNSUBACK User Property not sent if it would exceed the client's Maximum "
                      "Packet Size"),
    ("3.11.3-1", "S", "UNSUBACK Reason Codes in the order of the Topic Filters"),
    ("3.11.3-2", "S", "UNSUBACK uses only Unsubscribe Reason Codes"),
    ("3.12.4-1", "S", "PINGREQ answered by PINGRESP"),
    ("3.14.0-1", "S", "no DISCONNECT from the server before a CONNACK below 0x80"),
    ("3.14.1-1", "B", "DISCONNECT reserved flags validated; non-zero -> DISCONNECT 0x81"),
    ("3.14.2-1", "B", "DISCONNECT uses only Disconnect Reason Codes"),
    ("3.14.2-2", "S", "server sends no Session Expiry Interval on DISCONNECT"),
    ("3.14.2-3", "B", "DISCONNECT Reason String not sent if it would exceed the receiver's Maximum "
                      "Packet Size"),
    ("3.14.2-4", "B", "DISCONNECT User Property not sent if it would exceed the receiver's Maximum "
                      "Packet Size"),
    ("3.14.4-1", "B", "nothing sent after a DISCONNECT"),
    ("3.14.4-2", "B", "sender of DISCONNECT closes the connection"),
    ("3.14.4-3", "S", "DISCONNECT 0x00: will discarded, not published"),
    ("3.15.1-1", "B", "AUTH fixed-header flags 0000, else malformed -> close"),
    ("3.15.2-1", "B", "AUTH uses only Authenticate Reason Codes"),
    ("3.15.2-2", "B", "AUTH Reason String not sent if it would exceed the receiver's Maximum "
                      "Packet Size"),
    ("3.15.2-3", "B", "AUTH User Property not sent if it would exceed the receiver's Maximum "
                      "Packet Size"),
    ("4.1.0-1", "B", "session state not discarded while the connection is open"),
    ("4.1.0-2", "S", "session state discarded once the connection is closed and the Session Expiry "
                     "Interval has passed"),
    ("4.2.0-1", "B", "an ordered, lossless, bidirectional byte-stream transport is supported"),
    ("4.3.1-1", "B", "QoS 0 sender: PUBLISH QoS 0, DUP 0"),
    ("4.3.2-1", "B", "QoS 1 sender: unused packet id for each new message"),
    ("4.3.2-2", "B", "QoS 1 sender: PUBLISH with that id, QoS 1, DUP 0"),
    ("4.3.2-3", "B", "QoS 1 sender: unacknowledged until the PUBACK"),
    ("4.3.2-4", "B", "QoS 1 receiver: PUBACK with the packet id after taking ownership"),
    ("4.3.2-5", "B", "QoS 1 receiver: after PUBACK the same id is a new message, whatever DUP "
                     "says"),
    ("4.3.3-1", "B", "QoS 2 sender: unused packet id for each new message"),
    ("4.3.3-2", "B", "QoS 2 sender: PUBLISH with that id, QoS 2, DUP 0"),
    ("4.3.3-3", "B", "QoS 2 sender: unacknowledged until the PUBREC"),
    ("4.3.3-4", "B", "QoS 2 sender: PUBREL with the same id after a PUBREC below 0x80"),
    ("4.3.3-5", "B", "QoS 2 sender: PUBREL unacknowledged until the PUBCOMP"),
    ("4.3.3-6", "B", "QoS 2 sender: PUBLISH not re-sent after the PUBREL"),
    ("4.3.3-7", "B", "QoS 2 sender: no message expiry once the PUBLISH was sent"),
    ("4.3.3-8", "B", "QoS 2 receiver: PUBREC with the packet id after taking ownership"),
    ("4.3.3-9", "B", "QoS 2 receiver: after a PUBREC >= 0x80 the same id is a new message"),
    ("4.3.3-10", "B", "QoS 2 receiver: PUBREC for repeats before PUBREL, no duplicate delivery"),
    ("4.3.3-11", "B", "QoS 2 receiver: PUBREL answered by PUBCOMP with the same id"),
    ("4.3.3-12", "B", "QoS 2 receiver: after PUBCOMP the same id is a new message"),
    ("4.3.3-13", "B", "QoS 2 receiver: acknowledgement sequence continues even after message "
                      "expiry"),
    ("4.4.0-1", "B", "reconnect with Clean Start 0 and a session: re-send unacked PUBLISH and "
                     "PUBREL with their ids; no re-sends otherwise"),
    ("4.4.0-2", "B", "PUBACK/PUBREC >= 0x80: PUBLISH treated as acknowledged, not re-sent"),
    ("4.5.0-1", "S", "accepted message added to the session of every matching subscription"),
    ("4.5.0-2", "C", "client acknowledges every PUBLISH per its QoS, processed or not"),
    ("4.6.0-1", "C", "client re-sends PUBLISHes in their original order"),
    ("4.6.0-2", "C", "client sends PUBACKs in the order the PUBLISHes arrived"),
    ("4.6.0-3", "C", "client sends PUBRECs in the order the PUBLISHes arrived"),
    ("4.6.0-4", "C", "client sends PUBRELs in the order the PUBRECs arrived"),
    ("4.6.0-5", "S", "Ordered Topic: PUBLISHes to consumers in the order received from each "
                     "client"),
    ("4.6.0-6", "S", "every topic is an Ordered Topic by default on non-shared subscriptions"),
    ("4.7.0-1", "B", "wildcards only in Topic Filters, never in Topic Names"),
    ("4.7.1-1", "B", "'#' alone or after '/', and last in the filter"),
    ("4.7.1-2", "B", "'+' occupies an entire level"),
    ("4.7.2-1", "S", "filters starting with a wildcard do not match topics starting with '$'"),
    ("4.7.3-1", "B", "Topic Names and Filters at least one character long"),
    ("4.7.3-2", "B", "no U+0000 in Topic Names and Filters"),
    ("4.7.3-3", "B", "Topic Names and Filters at most 65,535 bytes"),
    ("4.7.3-4", "S", "no normalisation or substitution when matching"),
    ("4.8.2-1", "B", "Shared Subscription filter starts with $share/ and a ShareName of at least "
                     "one character"),
    ("4.8.2-2", "B", "ShareName has no '/', '+', '#' and is followed by '/' and a Topic Filter"),
    ("4.8.2-3", "S", "shared subscription: the subscriber's granted QoS respected"),
    ("4.8.2-4", "S", "shared subscription: interrupted QoS 2 delivery completed on reconnect"),
    ("4.8.2-5", "S", "shared subscription: session ended before reconnect -> QoS 2 message not "
                     "sent to another client"),
    ("4.8.2-6", "S", "shared subscription: PUBACK/PUBREC >= 0x80 -> message discarded, not sent to "
                     "another subscriber"),
    ("4.9.0-1", "B", "initial send quota non-zero and at most Receive Maximum"),
    ("4.9.0-2", "B", "send quota 0: no more QoS>0 PUBLISHes"),
    ("4.9.0-3", "B", "other packets still processed and answered while the quota is 0"),
    ("4.12.0-1", "S", "unsupported Authentication Method: may CONNACK 0x8C or 0x87, then close"),
    ("4.12.0-2", "S", "server AUTH during authentication carries reason 0x18"),
    ("4.12.0-3", "C", "client answers a server AUTH with AUTH 0x18"),
    ("4.12.0-4", "S", "server rejecting authentication closes the connection (may CONNACK >= 0x80 "
                      "first)"),
    ("4.12.0-5", "B", "every AUTH and a successful CONNACK carry the CONNECT's Authentication "
                      "Method"),
    ("4.12.0-6", "S", "no Authentication Method in CONNECT: no AUTH and no Authentication Method "
                      "in CONNACK from the server"),
    ("4.12.0-7", "B", "no Authentication Method in CONNECT: client sends no AUTH"),
    ("4.12.1-1", "C", "re-authentication uses the original Authentication Method"),
    ("4.12.1-2", "B", "failed re-authentication closes the connection"),
    ("4.13.1-1", "S", "Malformed Packet or Protocol Error with a defined Reason Code -> server "
                      "closes"),
    ("4.13.2-1", "B", "CONNACK/DISCONNECT reason >= 0x80: connection closed, sent or not"),
    ("6.0.0-1", "B", "WebSocket: binary frames only, else close"),
    ("6.0.0-2", "B", "WebSocket: packets not assumed aligned with frames"),
    ("6.0.0-3", "C", "WebSocket: client offers the 'mqtt' subprotocol"),
    ("6.0.0-4", "S", "WebSocket: server selects the 'mqtt' subprotocol"),
]

# Statements no test cites, and why. PENDING: Sol does this (or is meant to) for MQTT 5 and
# the test is still to be written; remove the entry when a test cites the statement (the
# check fails while a cited statement keeps a reason).
PENDING = "No MQTT 5 test cites it yet."
CLIENT = "Client obligation."
ENHANCED_AUTH = ("Not implemented yet: enhanced authentication (a CONNECT with an "
                 "Authentication Method gets CONNACK 0x8C, an AUTH packet DISCONNECT 0x82).")
RETAIN_ALWAYS = ("Does not arise: Sol always supports retained messages (CONNACK sends Retain "
                 "Available 1).")
PROP_SIZE = ("Does not arise: Sol sends no Reason String or User Property on this packet, so "
             "there is nothing to leave out for the receiver's Maximum Packet Size.")

REASONS = {
    "3.1.2-20": CLIENT + " The server side is [MQTT5-3.1.2-22].",
    "3.1.2-21": CLIENT + " Sol sends a Server Keep Alive when --max-keepalive caps the client's "
                "Keep Alive and holds the client to it: the server side, [MQTT5-3.2.2-21] "
                "[MQTT5-3.2.2-22].",
    "3.1.2-30": CLIENT + " Sol refuses an Authentication Method at CONNECT ([MQTT5-4.12.0-1]).",
    "3.1.3-8": "The server MAY reject a Client Identifier; Sol rejects none from an MQTT 5 client: "
               "any well-formed one is accepted, a zero-length one gets an Assigned Client "
               "Identifier ([MQTT5-3.1.3-6]), so CONNACK 0x85 is never sent.",
    "3.2.2-4": CLIENT,
    "3.2.2-5": CLIENT,
    "3.2.2-13": RETAIN_ALWAYS,
    "3.2.2-14": RETAIN_ALWAYS,
    "3.2.2-18": "Does not arise: Sol's CONNACK always sends Topic Alias Maximum 10 (not "
                "configurable), never none or 0; an alias above 10 is refused "
                "([MQTT5-3.2.2-17]).",
    "3.2.2-20": "Does not arise: Sol sends no User Property on CONNACK, so there is nothing to "
                "leave out for the client's Maximum Packet Size.",
    "3.3.4-8": CLIENT + " The server side is [MQTT5-3.3.4-10].",
    "3.4.2-2": PROP_SIZE,
    "3.4.2-3": PROP_SIZE,
    "3.5.2-2": PROP_SIZE,
    "3.5.2-3": PROP_SIZE,
    "3.6.2-2": PROP_SIZE,
    "3.6.2-3": PROP_SIZE,
    "3.7.2-2": PROP_SIZE,
    "3.7.2-3": PROP_SIZE,
    "3.9.2-1": PROP_SIZE,
    "3.9.2-2": PROP_SIZE,
    "3.11.2-1": PROP_SIZE,
    "3.11.2-2": PROP_SIZE,
    "3.14.2-4": "Does not arise: Sol sends no User Property on DISCONNECT, so there is nothing "
                "to leave out for the client's Maximum Packet Size.",
    "3.15.2-1": ENHANCED_AUTH + " Sol sends no AUTH.",
    "3.15.2-2": ENHANCED_AUTH + " Sol sends no AUTH.",
    "3.15.2-3": ENHANCED_AUTH + " Sol sends no AUTH.",
    "4.5.0-2": CLIENT,
    "4.6.0-1": CLIENT,
    "4.6.0-2": CLIENT,
    "4.6.0-3": CLIENT,
    "4.6.0-4": CLIENT,
    "4.12.0-2": ENHANCED_AUTH,
    "4.12.0-3": CLIENT + " Sol sends no AUTH, so there is nothing to answer.",
    "4.12.0-4": ENHANCED_AUTH,
    "4.12.0-5": ENHANCED_AUTH,
    "4.12.1-1": CLIENT + " Re-authentication needs enhanced authentication (not implemented "
                "yet).",
    "4.12.1-2": ENHANCED_AUTH + " Re-authentication cannot start.",
    "6.0.0-3": CLIENT + " Sol refuses an upgrade without it (test_ws.py).",
}

HEAD = [
    "# MQTT 5.0 conformance: normative statements and the tests that cite them\n",
    "Generated by `tests/integration/conformance5_table.py` from the `[MQTT5-x.x.x-y]` ids "
    "cited in `tests/integration/test_*.py`. Regenerate it after changing tests (and after "
    "merging new MQTT 5 tests) with one command, `/usr/bin/python3 "
    "tests/integration/conformance5_table.py --prune`, which also drops the reasons of the "
    "statements that tests now cite. `--check`, run by "
    "`tests/integration/test_conformance_doc.py`, fails if this file is stale, if a statement "
    "is neither cited by a test nor given a reason, if a statement that a test cites still has "
    "a reason, if a test file cites an `MQTT5-` id that is not listed here, or if a "
    "`test_mqtt5*.py` file cites a 3.1.1 `[MQTT-x.x.x-y]` id.\n",
    "The statements are the numbered conformance statements of *MQTT Version 5.0*, OASIS "
    "Standard, 7 March 2019 (its Appendix B), under the standard's own numbers. Tests cite "
    "them with the prefix `MQTT5-` (`[MQTT5-3.1.2-23]` is MQTT-3.1.2-23 below), so they never "
    "collide with the MQTT 3.1.1 ids of [conformance.md](conformance.md). The standard's body "
    "tags MQTT-4.2.0-1 as `[MQTT-4.2-1]` and cuts MQTT-3.2.2-8's tag short; the table uses "
    "Appendix B's ids.\n",
    "\"Binds\" says who the statement constrains: server, both, or client only. \"Both\" "
    "includes client obligations that the server has to detect as a Malformed Packet or "
    "Protocol Error. Every statement is cited by at least one integration test or has a "
    "reason.\n",
]

TAIL = """
## Not implemented yet

These MQTT 5 features are missing; the statements that need them say so above.

- Enhanced authentication: a CONNECT with an Authentication Method gets CONNACK 0x8C, an AUTH
  packet DISCONNECT 0x82 (the seam is `handle_auth` in `node/handle_ack.c`).
- MQTT over WebSocket (section 6): Sol listens on TCP only for now.
"""


def v311_ids_in_v5_files(tests_dir):
    """An MQTT 3.1.1 id ([MQTT-x.x.x-y]) in an MQTT 5 test file: most likely an MQTT5- id
    written without the 5, which would count for the 3.1.1 statement of that number."""
    found = []
    for name, src in read_test_files(tests_dir):
        if name.startswith("test_mqtt5"):
            for lineno, line in enumerate(src.splitlines(), 1):
                found += [f"MQTT 3.1.1 id in an MQTT 5 test file at {name}:{lineno} "
                          f"(write MQTT5-{m.group(1)}): MQTT-{m.group(1)}"
                          for m in V311_RE.finditer(line)]
    return found


def collect(tests_dir=HERE, prune=False):
    """(document text, problems) for the tests in tests_dir; with prune, first drop from
    REASONS (in this file too) the entries of statements that tests now cite."""
    cites, stray = scan_tests(ID_RE, tests_dir)
    if prune:
        for sid in prune_reasons(os.path.abspath(__file__), REASONS, cites):
            print(f"conformance: dropped the reason of MQTT5-{sid}: a test cites it")
    text, _ = render(HEAD, STATEMENTS, REASONS, cites, "MQTT-", TAIL)
    return text, (problems(STATEMENTS, REASONS, cites, stray, "MQTT5-") +
                  v311_ids_in_v5_files(tests_dir))


def main(argv=None):
    text, found = collect(prune="--prune" in (sys.argv[1:] if argv is None else argv))
    return write_or_check(DOC, text, found, argv)


if __name__ == "__main__":
    sys.exit(main())
