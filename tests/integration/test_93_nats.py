"""test_93_nats.py -- NATS triggers against a real nats-server (JetStream on) started
here: core subjects in a queue group, request/reply answered with the function's body,
and JetStream durable consumers acknowledged after success or terminated after
max_deliver. The client is the NATS text protocol over a socket, nothing more."""
import json
import shutil
import socket
import subprocess
import time

import pytest

from conftest import free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None,
                                reason="nats-server is not installed")


class Nats:
    """A minimal NATS client: CONNECT, PUB, SUB, MSG/HMSG, PING/PONG."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.sid = 0
        assert self._line().startswith(b"INFO ")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n')
        assert self._line() == b"PONG"

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("nats-server closed the connection")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def pub(self, subject, data, reply=None):
        head = "PUB %s %s%d\r\n" % (subject, reply + " " if reply else "", len(data))
        self.sock.sendall(head.encode() + data + b"\r\n")

    def sub(self, subject):
        self.sid += 1
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sid))
        return self.sid

    def next_msg(self, timeout=10):
        """(subject, headers dict, payload) of the next message."""
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                return parts[1].decode(), {}, self._take(int(parts[-1]))
            if parts[0] == b"HMSG":
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._take(total)
                headers = {}
                for h in raw[:hlen].decode().split("\r\n")[1:]:
                    if ":" in h:
                        k, v = h.split(":", 1)
                        headers[k.strip()] = v.strip()
                return parts[1].decode(), headers, raw[hlen:]
            if parts[0] == b"-ERR":
                raise AssertionError(line)

    def request(self, subject, data, timeout=10):
        inbox = "_INBOX.t%d" % (self.sid + 1)
        self.sub(inbox)
        self.pub(subject, data, reply=inbox)
        return self.next_msg(timeout)

    def js(self, api, req=None):
        _, _, body = self.request("$JS.API." + api, json.dumps(req or {}).encode())
        return json.loads(body)


@pytest.fixture(scope="module")
def nats(tmp_path_factory):
    d = tmp_path_factory.mktemp("nats")
    port = free_port()
    p = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(d)],
                         stdout=open(d / "nats.log", "ab"), stderr=subprocess.STDOUT)

    def up():
        Nats(port).sock.close()
        return True

    wait_for(up, 10, what="nats-server to answer")
    p.port = port
    p.url = "nats://127.0.0.1:%d" % port
    yield p
    p.terminate()
    p.wait(10)


def deploy(flint, name, nats_spec, **spec):
    state = flint.base / ("state-" + name)
    state.mkdir(exist_ok=True)
    flint.deploy_app(name, app="eventapp.py", env={"STATE": str(state)}, sandbox=False,
                     triggers=[{"nats": nats_spec}], **spec)
    wait_for(lambda: trigger(flint, name)["state"] == "running", 15,
             what="the NATS trigger of %s to run" % name)
    return state


def trigger(flint, name):
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    mine = [x for x in ls if x["function"] == name]
    assert len(mine) == 1, ls
    return mine[0]


def events(state):
    p = state / "events.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_core_publish_is_delivered(flint, nats):
    state = deploy(flint, "nc-pub", {"url": nats.url, "subject": "greet.*", "queue": "workers"})
    c = Nats(nats.port)
    c.pub("greet.en", b'{"hello": "world"}')
    got = wait_for(lambda: events(state), 20, what="the message to reach the function")
    assert len(got) == 1 and got[0]["body"] == '{"hello": "world"}'
    assert got[0]["trigger"] == "nats"
    reqs = flint.api("GET", "/v1/requests?fn=nc-pub").json()["requests"]
    assert [r["source"] for r in reqs] == ["nats:greet.*"]
    wait_for(lambda: reqs and flint.api("GET", "/v1/requests/" + reqs[0]["id"]).json()[
        "status"] == "succeeded", 10, what="the request to succeed")
    assert trigger(flint, "nc-pub")["fired"] == 1


def test_request_reply_round_trip(flint, nats):
    state = deploy(flint, "nc-rr", {"url": nats.url, "subject": "ask"})
    c = Nats(nats.port)
    subject, headers, body = c.request("ask", b"what time is it", timeout=20)
    assert body == b"got what time is it"
    assert headers.get("X-Flint-Status-Code") == "200", headers
    # Answered synchronously: not queued as an async request.
    assert flint.api("GET", "/v1/requests?fn=nc-rr").json()["requests"] == []
    assert [e["body"] for e in events(state)] == ["what time is it"]
    assert trigger(flint, "nc-rr")["replied"] == 1


def test_jetstream_acked_after_success(flint, nats):
    c = Nats(nats.port)
    r = c.js("STREAM.CREATE.ORDERS", {"name": "ORDERS", "subjects": ["orders.>"],
                                      "storage": "file"})
    assert "error" not in r, r
    state = deploy(flint, "nc-js", {"url": nats.url, "subject": "orders.>",
                                    "jetstream": {"stream": "ORDERS", "durable": "flint-js"}})
    for i in range(3):
        ack = c.request("orders.new", b'{"n": %d}' % i)[2]
        assert json.loads(ack)["stream"] == "ORDERS"
    wait_for(lambda: len(events(state)) == 3, 20, what="three messages to reach the function")
    assert sorted(json.loads(e["body"])["n"] for e in events(state)) == [0, 1, 2]

    def acked():
        info = c.js("CONSUMER.INFO.ORDERS.flint-js")
        return info["num_ack_pending"] == 0 and info["ack_floor"]["stream_seq"] == 3 and info

    info = wait_for(acked, 15, what="the consumer to have every message acknowledged")
    assert info["config"]["ack_policy"] == "explicit" and info["num_pending"] == 0
    assert trigger(flint, "nc-js")["acked"] == 3


def test_jetstream_terminated_after_max_deliver(flint, nats):
    c = Nats(nats.port)
    r = c.js("STREAM.CREATE.TASKS", {"name": "TASKS", "subjects": ["tasks"], "storage": "file"})
    assert "error" not in r, r
    state = deploy(flint, "nc-term", {"url": nats.url, "subject": "tasks", "max_deliver": 2,
                                      "jetstream": {"stream": "TASKS", "durable": "worker"}},
                   **{"async": {"retries": 0}})
    c.request("tasks", b"please fail")
    wait_for(lambda: trigger(flint, "nc-term")["termed"] == 1, 30,
             what="the message to be terminated")
    t = trigger(flint, "nc-term")
    assert t["naked"] == 1 and t["acked"] == 0
    # One attempt per delivery (retries: 0), two deliveries, then no more.
    assert len(events(state)) == 2
    info = c.js("CONSUMER.INFO.TASKS.worker")
    assert info["num_ack_pending"] == 0 and info["config"]["max_deliver"] == 2
    dead = flint.api("GET", "/v1/requests?fn=nc-term").json()["requests"]
    assert sorted(r["status"] for r in dead) == ["dead", "dead"]


def test_redeploy_without_trigger_unsubscribes(flint, nats):
    state = deploy(flint, "nc-stop", {"url": nats.url, "subject": "bye"})
    c = Nats(nats.port)
    c.pub("bye", b"one")
    wait_for(lambda: len(events(state)) == 1, 20, what="the first message")
    flint.deploy_app("nc-stop", app="eventapp.py", env={"STATE": str(state)}, sandbox=False)
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    assert not [x for x in ls if x["function"] == "nc-stop"]
    # The server no longer has flint's subscription on the subject: a request finds
    # no responder (a status-only HMSG with code 503) instead of an answer.
    c.sock.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n')
    _, headers, body = c.request("bye", b"two")
    assert body == b"" and [e["body"] for e in events(state)] == ["one"]
