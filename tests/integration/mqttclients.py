"""Third-party clients for the integration tests: paho-mqtt 1.6 and mosquitto_pub/mosquitto_sub.

Everything waits for events with a deadline; nothing sleeps a fixed time.
"""
import subprocess
import threading
import time

import paho.mqtt.client as mqtt


class PahoThread:
    """What both paho wrappers (PahoClient here, Paho5 in mqtt5raw.py) share: a network thread of
    their own, the messages received, and waiting on the condition every callback notifies. A
    subclass sets client, cond, messages, timeout and started, and defines wait_disconnected()."""

    def _start_loop(self):
        """Our own network thread (short select timeout, so stopping is quick; no reconnects)."""
        self._stop = False

        def run():
            while not self._stop:
                if self.client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                    time.sleep(0.02)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.started = True

    def stop_loop(self):
        if self.started:
            self._stop = True
            self.thread.join(5)
            self.started = False

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def _wait(self, pred, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def wait_messages(self, n, timeout=None):
        """Wait until at least n messages arrived; returns the list (asserting the count)."""
        ok = self._wait(lambda: len(self.messages) >= n, timeout)
        assert ok, f"got {len(self.messages)} messages, expected {n}: " + \
            repr([(m.topic, m.payload[:30]) for m in self.messages])
        return list(self.messages)

    def stop(self):
        """Teardown: disconnect if still connected."""
        try:
            if self.started:
                self.client.disconnect()
                self.wait_disconnected(1)
                self.stop_loop()
        except Exception:
            pass


class PahoClient(PahoThread):
    """A paho-mqtt 1.x client on its own network thread, recording every message it receives."""

    def __init__(self, host, port, client_id="", clean_session=True, keepalive=30, username=None,
                 password=None, will=None, connect=True, timeout=5.0):
        self.cond = threading.Condition()
        self.messages = []
        self.connack = None
        self.disconnected = False
        self.subacks = {}
        self.timeout = timeout
        self.client = mqtt.Client(client_id=client_id, clean_session=clean_session,
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_unsubscribe = self._on_unsubscribe
        self.unsubacks = set()
        self.host, self.port, self.keepalive = host, port, keepalive
        self.started = False
        if connect:
            self.connect()

    def _on_connect(self, client, userdata, flags, rc):
        with self.cond:
            self.connack = (flags.get("session present", 0), rc)
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.cond:
            self.subacks[mid] = list(granted)
            self.cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid):
        with self.cond:
            self.unsubacks.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def connect(self, expect_rc=0):
        """Connect and wait for CONNACK; returns (session_present, rc)."""
        self.client.connect(self.host, self.port, self.keepalive)
        self._start_loop()
        assert self._wait(lambda: self.connack is not None), "no CONNACK"
        if expect_rc is not None:
            assert self.connack[1] == expect_rc, f"CONNACK rc {self.connack[1]}"
        return self.connack

    def subscribe(self, topic, qos=0):
        """Subscribe (topic may be a list of (filter, qos)) and wait for SUBACK; returns granted."""
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.subacks), "no SUBACK"
        return self.subacks[mid]

    def unsubscribe(self, topic):
        """Unsubscribe and wait for UNSUBACK."""
        rc, mid = self.client.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.unsubacks), "no UNSUBACK"

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish and wait until the flow completes (PUBACK / PUBCOMP for QoS > 0)."""
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(self.timeout)
        assert info.is_published(), f"publish of {topic} not completed"
        return info

    def wait_disconnected(self, timeout=None):
        return self._wait(lambda: self.disconnected, timeout)

    def disconnect(self):
        """Clean DISCONNECT."""
        self.client.disconnect()
        self.wait_disconnected(2)
        self.stop_loop()


class MosquittoSub:
    """mosquitto_sub in the background (-d), ready once its SUBACK is printed."""

    def __init__(self, host, port, topics, qos=0, extra=(), count=None, timeout=10.0):
        # stdbuf: mosquitto_sub's stdout is a pipe here; make it line buffered to see lines live.
        args = ["stdbuf", "-oL", "mosquitto_sub", "-h", host, "-p", str(port), "-V", "mqttv311", "-d", "-v",
                "-q", str(qos)]
        for t in topics:
            args += ["-t", t]
        if count is not None:
            args += ["-C", str(count)]
        args += ["-W", str(int(timeout))]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_line(self, pred, timeout=10.0):
        """Wait for an output line satisfying pred; returns it (or fails)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line is None:
                        raise AssertionError("mosquitto_sub exited: " + repr(self.lines))
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timeout waiting in mosquitto_sub output: " +
                                         repr(self.lines))
                self.cond.wait(left)

    def wait_subscribed(self):
        return self.wait_line(lambda l: "received SUBACK" in l)

    def messages(self):
        """Output lines that are messages ('topic payload'), not -d debug lines."""
        with self.cond:
            return [l for l in self.lines if l is not None and not l.startswith("Client ")
                    and not l.startswith("Subscribed")]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def mosquitto_pub(host, port, topic, message, qos=0, retain=False, extra=(), timeout=10):
    """Run mosquitto_pub once; returns the CompletedProcess (check=True)."""
    args = ["mosquitto_pub", "-h", host, "-p", str(port), "-V", "mqttv311", "-t", topic,
            "-m", message, "-q", str(qos)]
    if retain:
        args.append("-r")
    args += list(extra)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
