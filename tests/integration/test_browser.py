"""A real browser: headless Chromium loads a page served by this test whose script (a minimal MQTT
3.1.1 client of its own) connects to Sol over ws:// and then wss:// (the test certificate trusted
for this run by its SPKI hash), subscribes, publishes, receives its message back, and POSTs what
it got to the test's HTTP server. The broker's Origin allow-list names the page's origin, so the
browser's real Origin header is checked too."""
import base64
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import HOST
from test_ws import ws_broker  # noqa: F401 (fixture)
from test_tls import pki  # noqa: F401 (fixture)

pytestmark = pytest.mark.sol_only

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = r"""<!doctype html><html><body><pre id="out">running</pre><script>
"use strict";
const enc = new TextEncoder(), dec = new TextDecoder();
function str(s) { const b = enc.encode(s); return [b.length >> 8, b.length & 255, ...b]; }
function pkt(type, body) {
  const len = []; let n = body.length;
  do { let d = n % 128; n = Math.floor(n / 128); if (n) d |= 128; len.push(d); } while (n);
  return new Uint8Array([type, ...len, ...body]);
}
// One MQTT session over a WebSocket: CONNECT, SUBSCRIBE topic, PUBLISH to it, wait for it back.
function roundTrip(url, cid, topic, payload) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ["mqtt"]);
    ws.binaryType = "arraybuffer";
    let buf = new Uint8Array(0);
    const timer = setTimeout(() => reject(new Error(url + ": timed out")), 15000);
    ws.onerror = () => reject(new Error(url + ": WebSocket error"));
    ws.onopen = () => ws.send(pkt(0x10, [...str("MQTT"), 4, 2, 0, 30, ...str(cid)]));
    ws.onmessage = (ev) => {
      const add = new Uint8Array(ev.data), all = new Uint8Array(buf.length + add.length);
      all.set(buf); all.set(add, buf.length); buf = all;
      for (;;) {
        let len = 0, mult = 1, i = 1;
        for (; i < buf.length; i++) { len += (buf[i] & 127) * mult; mult *= 128; if (!(buf[i] & 128)) break; }
        if (i >= buf.length || buf.length < i + 1 + len) return;
        const type = buf[0] >> 4, body = buf.slice(i + 1, i + 1 + len);
        buf = buf.slice(i + 1 + len);
        if (type === 2) {  // CONNACK
          if (body[1] !== 0) return reject(new Error(url + ": CONNACK " + body[1]));
          ws.send(pkt(0x82, [0, 1, ...str(topic), 0]));
        } else if (type === 9) {  // SUBACK
          ws.send(pkt(0x30, [...str(topic), ...enc.encode(payload)]));
        } else if (type === 3) {  // PUBLISH (QoS 0)
          const tl = (body[0] << 8) | body[1];
          clearTimeout(timer);
          ws.close(1000);
          resolve({topic: dec.decode(body.slice(2, 2 + tl)), payload: dec.decode(body.slice(2 + tl)),
                   protocol: ws.protocol});
        }
      }
    };
  });
}
async function main() {
  const result = {};
  try {
    result.ws = await roundTrip("ws://127.0.0.1:WS_PORT/mqtt", "browser-ws", "browser/ws", "hello over ws");
    result.wss = await roundTrip("wss://localhost:WSS_PORT/mqtt", "browser-wss", "browser/wss", "hello over wss");
  } catch (e) {
    result.error = String(e.message || e);
  }
  document.getElementById("out").textContent = JSON.stringify(result);
  await fetch("/result", {method: "POST", body: JSON.stringify(result)});
}
main();
</script></body></html>
"""


def spki_hash(cert):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's pin format)."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                         capture_output=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True, timeout=10).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class PageServer:
    """127.0.0.1 HTTP server: GET / is the page, POST /result hands the page's result over."""

    def __init__(self):
        self.page, self.result, self.got = "", None, threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.result = json.loads(self.rfile.read(n) or b"{}")
                self.send_response(204)
                self.end_headers()
                outer.got.set()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (deploy/install-deps.sh)")
def test_browser_over_ws_and_wss(ws_broker, tmp_path):  # noqa: F811
    srv = PageServer()
    t = ws_broker("--ws-origins", f"http://127.0.0.1:{srv.port}")  # the page's own origin
    srv.page = PAGE.replace("WSS_PORT", str(t.wss_port)).replace("WS_PORT", str(t.ws_port))
    pin = spki_hash(os.path.join(t.pki, "server.crt"))
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           f"--ignore-certificate-errors-spki-list={pin}", f"http://127.0.0.1:{srv.port}/"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert srv.got.wait(60), "the page sent no result within 60 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        srv.close()
    r = srv.result
    assert "error" not in r, (r, t.b.log())
    assert r["ws"] == {"topic": "browser/ws", "payload": "hello over ws", "protocol": "mqtt"}
    assert r["wss"] == {"topic": "browser/wss", "payload": "hello over wss", "protocol": "mqtt"}
    log = t.b.log()
    assert "client browser-ws connected" in log and "client browser-wss connected" in log
