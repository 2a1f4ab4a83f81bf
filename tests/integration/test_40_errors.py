"""test_40_errors.py -- every error the gateway and the admin API answer, and when."""
import socket
import threading
import time

import requests

from conftest import holds_for, wait_for

COLD = 30


def json_error(r, status):
    """Checks r is a JSON error with status and returns its message."""
    assert r.status_code == status, (r.status_code, r.headers, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    msg = r.json()["error"]
    assert isinstance(msg, str) and msg, r.text
    if r.url.startswith("http://127.0.0.1:") and "/v1/" not in r.url and "/healthz" not in r.url:
        assert r.headers.get("X-Flint-Request-Id"), "gateway error without X-Flint-Request-Id"
    return msg


def raw_exchange(port, data, timeout=10):
    """Sends data on a new connection and reads until the server closes it. Returns
    (bytes received, closed by server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking everything
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return out, True
            except socket.timeout:
                return out, False
            if not d:
                return out, True
            out += d
    finally:
        s.close()


def test_404_unknown_function(flint):
    msg = json_error(flint.gw("/function/nosuch/x?y=1"), 404)
    assert "nosuch" in msg
    json_error(flint.gw("/"), 404)
    json_error(flint.gw("/something/else"), 404)
    # A name that cannot be a function.
    r = flint.gw("/function/Not_A_Name/")
    assert r.status_code in (400, 404)
    json_error(r, r.status_code)


def test_400_malformed_request(flint):
    out, closed = raw_exchange(flint.gw_port, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert closed
    out, closed = raw_exchange(flint.gw_port, b"GET /function/x HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert closed


def test_413_body_over_max_body(flint):
    flint.deploy_app("small", limits={"max_body": "1k"})
    r = flint.gw("/function/small/echo", method="POST", data=b"x" * 1024, timeout=COLD)
    assert r.status_code == 200
    assert r.json()["body_length"] == 1024
    pids = [i["pid"] for i in flint.instances("small")]
    assert len(pids) == 1
    msg = json_error(flint.gw("/function/small/echo", method="POST", data=b"x" * 1025), 413)
    assert msg
    # Chunked: the limit is found while streaming.
    r = flint.gw("/function/small/echo", method="POST", data=iter([b"y" * 1000, b"y" * 1000]))
    json_error(r, 413)
    # A client's oversized body says nothing about the instance: it keeps serving.
    holds_for(lambda: [i["pid"] for i in flint.instances("small")], pids, 1.0,
              what="the instance pids after a 413")


def test_431_huge_header(flint):
    req = b"GET /function/nosuch/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (256 * 1024) + b"\r\n\r\n"
    out, closed = raw_exchange(flint.gw_port, req)
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    assert closed


def test_502_instance_died_mid_request(flint):
    flint.deploy_app("dies")
    r = flint.gw("/function/dies/", timeout=COLD)
    assert r.status_code == 200
    json_error(flint.gw("/function/dies/die"), 502)

    # The request reached an instance and killed it: it must not be replayed on
    # another one (a "poison" request would take every instance down in turn).
    def deaths():
        out = flint.cli_ok("logs", "dies").stdout
        return out.count("testapp: /die asked, exiting")

    wait_for(deaths, 10, what="the /die line in the logs")
    holds_for(deaths, 1, 1.0, what="instances killed by one /die request")
    # The next request gets a new instance.
    r = flint.gw("/function/dies/echo", timeout=COLD)
    assert r.status_code == 200


def test_503_queue_full(flint):
    flint.deploy_app("busy", scale={"concurrency": 1, "max": 1}, queue={"max": 1, "timeout": "30s"})
    r = flint.gw("/function/busy/", timeout=COLD)
    assert r.status_code == 200
    results = {}

    def call(key, path):
        results[key] = flint.gw(path, timeout=COLD)

    a = threading.Thread(target=call, args=("a", "/function/busy/slow?s=3"))
    a.start()
    wait_for(lambda: any(i["inflight"] == 1 for i in flint.instances("busy")), 10,
             what="the slow request to reach the instance")
    b = threading.Thread(target=call, args=("b", "/function/busy/slow?s=0.1"))
    b.start()
    wait_for(lambda: flint.function("busy")["queued"] == 1, 10, what="one request queued")

    t0 = time.monotonic()
    r = flint.gw("/function/busy/slow?s=0.1")
    elapsed = time.monotonic() - t0
    json_error(r, 503)
    assert elapsed < 2.0, "a full queue must refuse at once, took %.1fs" % elapsed
    a.join(30)
    b.join(30)
    assert (results["a"].status_code, results["a"].content) == (200, b"slept 3\n")
    assert (results["b"].status_code, results["b"].content) == (200, b"slept 0.1\n")


def test_504_function_timeout(flint):
    flint.deploy_app("slowfn", limits={"timeout": "1s"})
    assert flint.gw("/function/slowfn/", timeout=COLD).status_code == 200
    pids = [i["pid"] for i in flint.instances("slowfn")]
    assert len(pids) == 1
    t0 = time.monotonic()
    r = flint.gw("/function/slowfn/slow?s=4", timeout=10)
    elapsed = time.monotonic() - t0
    json_error(r, 504)
    assert elapsed < 3.0, "timeout 1s answered after %.1fs" % elapsed
    # A slow request is the function's business, not a broken instance: it stays.
    holds_for(lambda: [i["pid"] for i in flint.instances("slowfn")], pids, 1.0,
              what="the instance pids after a 504")


def test_crash_at_start(flint):
    flint.deploy_app("crashy", app="crash.py", queue={"timeout": "20s"})
    t0 = time.monotonic()
    r = flint.gw("/function/crashy/", timeout=40)
    elapsed = time.monotonic() - t0
    assert r.status_code in (502, 503), (r.status_code, r.text)
    json_error(r, r.status_code)
    assert elapsed < 20, "a crashing function held the request %.1fs, past its queue timeout" % elapsed

    def backoff():
        d = flint.cli_json("describe", "crashy", "-o", "json")
        return d if d["state"] == "backoff" else None

    d = wait_for(backoff, 20, what="state backoff")
    assert "status 1" in d["reason"], d["reason"]
    assert any(l.endswith("stderr crash: CONFIG_URL is not set, cannot start") for l in d["last_logs"]), d["last_logs"]

    text = flint.cli_ok("describe", "crashy").stdout
    assert "backoff" in text
    assert "CONFIG_URL is not set" in text

    # While backing off, requests are refused quickly with a JSON error.
    t0 = time.monotonic()
    r = flint.gw("/function/crashy/", timeout=40)
    assert r.status_code in (502, 503)
    json_error(r, r.status_code)
    assert time.monotonic() - t0 < 20


def test_auth(flint):
    base = "http://%s" % flint.admin
    r = requests.get(base + "/healthz", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"ok": True}

    json_error(requests.get(base + "/v1/functions", timeout=5), 401)
    json_error(requests.get(base + "/v1/functions", headers={"Authorization": "Bearer nope"}, timeout=5), 401)
    json_error(requests.get(base + "/v1/functions", headers={"Authorization": "Bearer " + flint.token + "x"},
                            timeout=5), 401)
    json_error(requests.get(base + "/v1/functions", headers={"Authorization": flint.token}, timeout=5), 401)
    json_error(requests.put(base + "/v1/functions/x", json={"command": ["true"]}, timeout=5), 401)
    assert flint.api("GET", "/v1/functions/x").status_code == 404
    r = flint.api("GET", "/v1/functions")
    assert r.status_code == 200

    r = flint.cli("ls", token="wrong-token")
    assert r.returncode == 1
    assert "token" in r.stderr

    json_error(flint.api("GET", "/v1/nosuchpath"), 404)
    json_error(flint.api("POST", "/v1/functions"), 405)
