"""test_71_network.py -- `network: isolated`: a function's own network namespace.

A probe app (written below, standard library only) reports what it can reach from inside
its instance: the admin API, the gateway, a listener of the test's own on every host
address, and which network interfaces it sees. The same probe deployed with the host's
network is the control: everything it fails to reach when isolated must be reachable
without isolation, so a failure cannot come from the probe itself.
"""
import json
import os
import signal
import socket
import subprocess
import threading

import pytest
import requests

from conftest import PY, wait_for

COLD = 30

PROBE = r'''
import errno, json, os, socket, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


BOOT = os.urandom(8).hex()  # tells instances apart (each is PID 2 of its own namespace)


def try_connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        out = {"boot": BOOT, "netns": os.readlink("/proc/self/ns/net")}
        if u.path == "/slow":
            time.sleep(float(q.get("s", "0.5")))
        if u.path == "/net":
            out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
            out["reach"] = {t: try_connect(*t.rsplit(":", 1))
                            for t in q.get("targets", "").split(",") if t}
        body = (json.dumps(out) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def deploy_probe(flint, name, **spec):
    d = flint.base / "fn" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "probe.py").write_text(PROBE)
    doc = {"name": name, "command": [PY, "probe.py"]}
    doc.update(spec)
    (d / "flint.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    flint.cli_ok("deploy", d)
    flint.track()
    return name


def get(flint, name, path):
    r = flint.gw("/function/%s%s" % (name, path), timeout=COLD)
    assert r.status_code == 200, (r.status_code, r.text, flint.log_tail(30))
    return r.json()


def host_addresses():
    """Every IPv4 address of this host's interfaces (loopback's 127.0.0.1 included)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


@pytest.fixture(scope="module")
def listener():
    """A TCP listener on every host address, accepting and closing."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen(64)
    stop = threading.Event()

    def run():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop.set()
    t.join()
    s.close()


def targets(flint, port):
    t = [flint.admin, flint.gateway] + ["%s:%d" % (a, port) for a in host_addresses()]
    return ",".join(t)


def test_isolated_function_reaches_nothing_but_is_served(flint, listener):
    deploy_probe(flint, "open", network="host")
    deploy_probe(flint, "closed", network="isolated")
    tg = targets(flint, listener)
    control = get(flint, "open", "/net?targets=" + tg)
    # The probe can reach all of these from the host's network...
    assert all(v == "ok" for v in control["reach"].values()), control
    # ... and none of them from its own.
    iso = get(flint, "closed", "/net?targets=" + tg)
    assert set(iso["reach"]) == set(control["reach"])
    for target, result in iso["reach"].items():
        assert result in ("ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"), (target, iso)
    assert iso["reach"][flint.admin] == "ECONNREFUSED", iso  # its own loopback, empty
    assert iso["interfaces"] == ["lo"], iso
    assert iso["netns"] != control["netns"]
    # flint's own view says so.
    fn = flint.function("closed")
    assert fn["spec"]["network"] == "isolated", fn["spec"]
    assert flint.function("open")["spec"]["network"] == "host"


def test_one_namespace_per_function_shared_by_its_instances(flint):
    deploy_probe(flint, "pair", network="isolated",
                 scale={"min": 2, "max": 2, "concurrency": 1})
    deploy_probe(flint, "other", network="isolated")
    wait_for(lambda: sum(i["state"] == "ready" for i in flint.instances("pair")) == 2,
             COLD, what="two ready instances of pair")
    # Two slow requests at once: with room for one each, each instance takes one.
    seen = {}

    def call():
        j = get(flint, "pair", "/slow?s=0.5")
        seen[j["boot"]] = j["netns"]

    ts = [threading.Thread(target=call) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(seen) == 2, seen
    assert len(set(seen.values())) == 1, seen
    other = get(flint, "other", "/")
    assert other["netns"] not in seen.values()


def test_isolated_function_with_http_health_check(flint):
    # The readiness check runs inside the namespace too.
    deploy_probe(flint, "checked", network="isolated", health={"path": "/net"})
    assert get(flint, "checked", "/net")["interfaces"] == ["lo"]


def test_network_field_is_validated(flint, tmp_path):
    for spec, words in [({"network": "none"}, 'network: must be "host"'),
                        ({"network": 1}, 'network: must be "host"'),
                        ({"network": "isolated", "sandbox": False}, "needs \"sandbox\": true")]:
        doc = {"name": "badnet", "command": [PY, "probe.py"]}
        doc.update(spec)
        r = flint.api("PUT", "/v1/functions/badnet", json=doc)
        assert r.status_code == 400, (spec, r.status_code, r.text)
        assert words in r.json()["error"], (spec, r.text)


def test_instance_of_isolated_function_is_replaced_after_a_crash(flint):
    deploy_probe(flint, "phoenix", network="isolated", scale={"min": 1, "max": 1})
    first = get(flint, "phoenix", "/")
    pid = [i for i in flint.instances("phoenix") if i["state"] == "ready"][0]["pid"]
    os.kill(int(pid), signal.SIGKILL)

    def replaced():
        r = flint.gw("/function/phoenix/", timeout=COLD)
        return r.status_code == 200 and r.json()["boot"] != first["boot"] and r.json()

    again = wait_for(replaced, COLD, what="a new instance of phoenix serving")
    # The namespace outlives its instances: the new one joins the same.
    assert again["netns"] == first["netns"], (first, again)
