"""test_90_async.py -- durable async calls: 202 after the request is stored, results,
retries with back-off, the dead letter and its re-drive, callbacks, and no loss on kill -9."""
import http.server
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import PY, free_port, wait_for

APP = r'''
import os, sys, time, json
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

STATE = os.environ["STATE"]

def bump(key):
    path = os.path.join(STATE, key)
    n = int(open(path).read()) if os.path.exists(path) else 0
    n += 1
    open(path, "w").write(str(n))
    return n

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, code, body, ctype="text/plain"):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("X-App", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        rid = self.headers.get("X-Flint-Request-Id", "")
        attempt = self.headers.get("X-Flint-Attempt", "")
        p = self.path.split("?")[0]
        if p == "/echo":
            return self.answer(200, body)
        if p == "/flaky":
            key = "flaky-" + self.path.split("key=")[1]
            k = bump(key)
            if k <= 2:
                return self.answer(500, "fail %d" % k)
            return self.answer(200, "ok after %d attempt %s" % (k, attempt))
        if p == "/fail":
            if os.path.exists(os.path.join(STATE, "heal")):
                return self.answer(200, "healed")
            return self.answer(503, "down")
        if p == "/bad":
            return self.answer(400, "bad input")
        if p == "/log":
            with open(os.path.join(STATE, "log"), "a") as f:
                f.write(rid + "\n")
            time.sleep(0.005)
            return self.answer(200, "logged")
        if p == "/":
            with open(os.path.join(STATE, "cron"), "a") as f:
                f.write("%.3f %s %s\n" % (time.time(), self.headers.get("X-Flint-Trigger"),
                                          body.decode()))
            return self.answer(200, "fired")
        return self.answer(404, "no")
    do_PUT = do_POST

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def deploy(flint, name, **spec):
    d = flint.base / "fn" / name
    d.mkdir(parents=True, exist_ok=True)
    state = flint.base / ("state-" + name)
    state.mkdir(exist_ok=True)
    (d / "app.py").write_text(APP)
    # The app keeps its state in files of the test: outside a sandbox.
    doc = {"name": name, "command": [PY, "app.py"], "env": {"STATE": str(state)},
           "sandbox": False}
    doc.update(spec)
    (d / "flint.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    flint.cli_ok("deploy", d)
    flint.track()
    return state


def enqueue(flint, path, data=b"", headers=None, method="POST"):
    r = flint.gw("/async-function/" + path, method=method, data=data, headers=headers)
    assert r.status_code == 202, (r.status_code, r.text)
    rid = r.headers["X-Flint-Request-Id"]
    assert r.json()["id"] == rid
    return rid


def wait_final(flint, rid, timeout=30):
    box = {}

    def final():
        r = flint.gw("/requests/" + rid)
        assert r.status_code == 200, (r.status_code, r.text)
        box["r"] = r.json()
        return box["r"]["status"] in ("succeeded", "failed", "dead")

    wait_for(final, timeout, what="request %s to reach a final state" % rid)
    return box["r"]


def test_enqueue_then_result(flint):
    deploy(flint, "aecho")
    rid = enqueue(flint, "aecho/echo", b"hello async", {"Content-Type": "text/plain"})
    r = wait_final(flint, rid)
    assert r["status"] == "succeeded", r
    assert r["attempts"] == 1 and r["code"] == 200 and r["function"] == "aecho"
    assert r["headers"]["x-app"] == "yes"
    res = flint.gw("/requests/%s/result" % rid)
    assert res.status_code == 200
    assert res.content == b"hello async"
    assert res.headers["Content-Type"] == "text/plain"
    assert res.headers["X-Flint-Status"] == "succeeded"
    # The admin API and the CLI show the same request.
    assert flint.api("GET", "/v1/requests/" + rid).json()["status"] == "succeeded"
    out = flint.cli_json("requests", rid, "-o", "json")
    assert out["id"] == rid and out["result_size"] == len(b"hello async")


def test_unknown_request_and_bad_callback(flint):
    assert flint.gw("/requests/doesnotexist").status_code == 404
    r = flint.gw("/async-function/aecho/echo", method="POST", data=b"x",
                 headers={"X-Callback-Url": "ftp://nope"})
    assert r.status_code == 400 and "X-Callback-Url" in r.json()["error"]
    assert flint.gw("/async-function/nosuchfn", method="POST").status_code == 404


def test_idempotent_enqueue_with_client_id(flint):
    rid = "client-chosen-id-1"
    a = enqueue(flint, "aecho/echo", b"one", {"X-Flint-Request-Id": rid})
    b = enqueue(flint, "aecho/echo", b"two", {"X-Flint-Request-Id": rid})
    assert a == b == rid
    wait_final(flint, rid)
    assert flint.gw("/requests/%s/result" % rid).content == b"one"


def test_fails_twice_then_succeeds(flint):
    deploy(flint, "aflaky", **{"async": {"backoff_min": "50ms", "backoff_max": "200ms"}})
    rid = enqueue(flint, "aflaky/flaky?key=k1")
    r = wait_final(flint, rid)
    assert r["status"] == "succeeded", r
    assert r["attempts"] == 3
    assert flint.gw("/requests/%s/result" % rid).content == b"ok after 3 attempt 3"


def test_4xx_is_final(flint):
    rid = enqueue(flint, "aecho/bad")
    r = wait_final(flint, rid)
    assert r["status"] == "failed" and r["attempts"] == 1 and r["code"] == 400, r


def test_dead_letter_then_retry(flint):
    state = deploy(flint, "afail", **{"async": {"retries": 2, "backoff_min": "20ms",
                                                "backoff_max": "50ms"}})
    rid = enqueue(flint, "afail/fail")
    r = wait_final(flint, rid)
    assert r["status"] == "dead" and r["attempts"] == 3 and r["code"] == 503, r
    assert "gave up after 3 attempts" in r["error"]
    dead = flint.cli_json("requests", "--dead", "-o", "json")["requests"]
    assert rid in [d["id"] for d in dead]
    # A running request cannot be re-driven; a dead one can.
    (state / "heal").write_text("1")
    flint.cli_ok("requests", "retry", rid)
    r = wait_final(flint, rid)
    assert r["status"] == "succeeded" and r["attempts"] == 1, r
    assert flint.gw("/requests/%s/result" % rid).content == b"healed"
    again = flint.cli("requests", "retry", rid)
    assert again.returncode == 1 and "only dead or failed" in again.stderr


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        Receiver.got.append((dict(self.headers), self.rfile.read(n)))
        # The first delivery fails: the callback must be retried.
        code = 500 if len(Receiver.got) == 1 else 204
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_callback_delivered_and_retried(flint):
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rid = enqueue(flint, "aecho/echo", b"for the callback",
                      {"X-Callback-Url": "http://127.0.0.1:%d/hook" % port,
                       "Content-Type": "text/plain"})
        wait_for(lambda: len(Receiver.got) >= 2, 20, what="the callback to be retried")
        headers, body = Receiver.got[-1]
        assert body == b"for the callback"
        assert headers["X-Flint-Request-Id"] == rid
        assert headers["X-Flint-Status"] == "succeeded"
        assert headers["Content-Type"] == "text/plain"
        wait_for(lambda: flint.gw("/requests/" + rid).json().get("callback_state") == "done", 10)
    finally:
        srv.shutdown()


def test_metrics(flint):
    text = flint.gw("/metrics").text
    assert 'flint_async_outcomes_total{function="aecho",status="succeeded"}' in text
    assert 'flint_async_queue_depth{function="aecho"} 0' in text


def test_kill9_loses_nothing(fresh_flint):
    f = fresh_flint
    state = deploy(f, "alog", scale={"max": 4},
                   **{"async": {"concurrency": 16, "backoff_min": "100ms"}})
    n = 2000
    s = requests.Session()

    def one(i):
        with requests.Session() as ss:
            r = ss.post("http://%s/async-function/alog/log" % f.gateway, data=b"%d" % i,
                        timeout=30)
            assert r.status_code == 202, r.text
            return r.headers["X-Flint-Request-Id"]

    with ThreadPoolExecutor(16) as ex:
        ids = list(ex.map(one, range(n)))
    assert len(set(ids)) == n
    log = state / "log"
    # Kill while the queue is being worked through.
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 200, 30,
             what="some requests to run")
    f.kill9()
    ran_before = len(log.read_text().split())
    f.start()

    def all_final():
        r = f.api("GET", "/v1/requests?fn=alog&limit=10000")
        reqs = r.json()["requests"]
        return len(reqs) == n and all(q["status"] == "succeeded" for q in reqs)

    wait_for(all_final, 120, interval=0.5, what="all 2000 requests to succeed after restart")
    seen = log.read_text().split()
    assert set(seen) == set(ids), "lost: %d" % len(set(ids) - set(seen))
    twice = len(seen) - len(set(seen))
    print("\nkill -9 with %d requests (%d had run): none lost, %d ran twice"
          % (n, ran_before, twice))
    s.close()
