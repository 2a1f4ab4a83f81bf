"""test_98_hostile.py -- hostile clients on real sockets: request smuggling, slowloris and
idle connections, a client that never reads, the admin API without its token, and the
bound on held requests.

The daemon runs with short --header-timeout/--idle-timeout so the timeouts can be seen
closing connections; nothing here asserts how fast anything is (docs/security.md has the
figures from bench/slowloris.py).
"""
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

import conftest
from conftest import Flint, wait_for

HEADER_TIMEOUT = "1s"
IDLE_TIMEOUT = "2s"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """A daemon started as `flint serve ... --header-timeout 1s --idle-timeout 2s`, with
    the test app deployed as `h` (one warm instance)."""
    base = tmp_path_factory.mktemp("hostile")
    wrapper = base / "flint-short-timeouts"
    wrapper.write_text(
        '#!/bin/sh\nif [ "$1" = serve ]; then exec "%s" "$@" --header-timeout %s --idle-timeout %s; fi\n'
        'exec "%s" "$@"\n' % (conftest.FLINT, HEADER_TIMEOUT, IDLE_TIMEOUT, conftest.FLINT))
    wrapper.chmod(0o755)
    real = conftest.FLINT
    conftest.FLINT = wrapper  # exec keeps the pid: proc.pid is the daemon's
    try:
        f = Flint(base).start()
    finally:
        conftest.FLINT = real
    f.deploy_app("h", scale={"min": 1, "max": 1})
    wait_for(lambda: f.gw("/function/h/").status_code == 200, 30, what="h to answer")
    yield f
    f.close()


def gw_addr(f):
    host, port = f.gateway.rsplit(":", 1)
    return host, int(port)


def exchange(f, data, timeout=10.0):
    """Sends data on a new connection and reads until the server closes it. Returns
    (status, everything read, closed_by_server)."""
    s = socket.create_connection(gw_addr(f), timeout=timeout)
    out = b""
    closed = False
    try:
        s.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not b:
                closed = True
                break
            out += b
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", out)
    return (int(m.group(1)) if m else None), out, closed


SMUGGLING = {
    "content-length and transfer-encoding":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding and content-length":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 4\r\n\r\n0\r\n\r\n",
    "two different content-lengths":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Content-Length: 5\r\n\r\nabcde",
    "bad chunk size":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "obs-fold":
        b"GET /function/h/echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
    "space in a header name":
        b"GET /function/h/echo HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n",
    "space before the colon":
        b"GET /function/h/echo HTTP/1.1\r\nHost : x\r\n\r\n",
    "NUL in a header value":
        b"GET /function/h/echo HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "NUL in a header name":
        b"GET /function/h/echo HTTP/1.1\r\nHost: x\r\nX-\x00A: 1\r\n\r\n",
    "transfer-encoding not ending in chunked":
        b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
        b"0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_is_refused_and_closed(hf, case):
    status, out, closed = exchange(hf, SMUGGLING[case])
    assert status == 400, "%s: %r" % (case, out[:300])
    assert closed, "%s: the connection stayed open after the 400" % case
    body = out.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body.decode())["status"] == 400, body
    # Nothing after the refused head was served as a second request.
    assert out.count(b"HTTP/1.1 ") == 1, out


def test_sane_request_on_the_same_path_still_works(hf):
    status, out, _ = exchange(hf, b"POST /function/h/echo HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert status == 200, out[:300]
    assert b'"body_length": 5' in out


def read_status(s, timeout):
    """Reads from s until the server closes it; returns what was read (b"" on a reset)."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            b = s.recv(4096)
        except ConnectionResetError:
            return out
        if not b:
            return out
        out += b


def test_header_timeout_closes_slowloris_while_normal_traffic_flows(hf):
    """200 connections trickle a head one byte at a time: each is answered 408 and closed
    once the head timeout passes, and requests on other connections are served meanwhile."""
    addr = gw_addr(hf)
    slow = []
    for _ in range(200):
        s = socket.create_connection(addr, timeout=10)
        s.sendall(b"GET /function/h/ HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in list(slow):
                try:
                    s.send(b"X")
                except OSError:
                    slow.remove(s)
            time.sleep(0.2)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        with requests.Session() as sess:
            for _ in range(50):
                r = sess.get("http://%s/function/h/" % hf.gateway, timeout=10)
                assert r.status_code == 200 and r.text == "testapp\n", (r.status_code, r.text)
        # Every slow connection gets its 408 and is closed, however many bytes it sends.
        wait_for(lambda: not slow, 30, what="the gateway to close all 200 slow connections")
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()


def test_slow_head_gets_408(hf):
    s = socket.create_connection(gw_addr(hf), timeout=10)
    try:
        s.sendall(b"GET /function/h/ HTTP/1.1\r\nHost: x\r\n")
        out = read_status(s, 15)
    finally:
        s.close()
    assert out.startswith(b"HTTP/1.1 408 "), out[:300]
    assert b"did not arrive within 1000 ms" in out


def test_idle_timeout_closes_keepalive_connection(hf):
    s = socket.create_connection(gw_addr(hf), timeout=10)
    try:
        s.sendall(b"GET /function/h/ HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"testapp\n" not in got:
            b = s.recv(4096)
            assert b, "closed before the response: %r" % got
            got += b
        assert got.startswith(b"HTTP/1.1 200 ")
        # Idle now: the server closes the connection without a word.
        assert read_status(s, 15) == b""
    finally:
        s.close()


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def test_client_that_never_reads_does_not_grow_memory(hf):
    size = 200 << 20
    pid = hf.proc.pid
    base = vm_rss_kib(pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(gw_addr(hf))
    try:
        s.sendall(b"GET /function/h/download?size=%d&chunk=1048576 HTTP/1.1\r\nHost: x\r\n\r\n"
                  % size)
        peak = base
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the instance keeps writing; we do not read
            peak = max(peak, vm_rss_kib(pid))
            time.sleep(0.05)
        assert peak - base < 50 * 1024, "VmRSS grew by %d KiB while the client did not read" % (
            peak - base)
        # The stream was only stalled: reading now gets all of it.
        got = 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 "), head[:200]
        got = len(head.split(b"\r\n\r\n", 1)[1])
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
            peak = max(peak, vm_rss_kib(pid))
            if got >= size and b.endswith(b"0\r\n\r\n"):
                break
        assert got >= size, "read %d bytes of %d" % (got, size)
        assert peak - base < 50 * 1024
    finally:
        s.close()


def documented_admin_calls():
    """Every `METHOD /v1/...` in docs/api.md, with placeholders filled in."""
    text = (DOCS / "api.md").read_text()
    calls = set()
    for m in re.finditer(r"`(GET|POST|PUT|DELETE|HEAD|PATCH) (/v1/[^`\s?]*)", text):
        path = m.group(2).replace("NAME", "h").replace("sha256:HEX", "sha256:" + "0" * 64)
        path = path.replace("ID", "0123456789abcdef").replace("[/rest]", "")
        calls.add((m.group(1), path))
    assert len(calls) >= 10, calls
    return sorted(calls)


def test_admin_api_refuses_every_documented_call_without_the_token(hf):
    bad_tokens = ["", "x", hf.token[:-1], hf.token + "x", hf.token.upper(), "Basic " + hf.token]
    for method, path in documented_admin_calls():
        for tok in bad_tokens:
            h = {} if tok == "" else {"Authorization": "Bearer " + tok}
            if tok.startswith("Basic "):
                h = {"Authorization": tok}
            r = requests.request(method, "http://%s%s" % (hf.admin, path), headers=h,
                                 data=b"{}", timeout=10)
            assert r.status_code == 401, (method, path, tok[:8], r.status_code, r.text)
            assert hf.token not in r.text and hf.token not in str(r.headers), (method, path)
            if method != "HEAD":
                assert "error" in r.json(), (method, path, r.text)


def test_admin_errors_never_echo_the_token(hf):
    # Errors with a valid token (unknown names, bad bodies, bad paths) say what was wrong
    # without repeating what was sent in Authorization.
    for method, path, body in [("GET", "/v1/functions/nope", None),
                               ("PUT", "/v1/functions/x", b"{not json"),
                               ("PUT", "/v1/functions/x", json.dumps({"name": "y"}).encode()),
                               ("GET", "/v1/nothing-here", None),
                               ("POST", "/v1/functions/h/scale", b'{"min": 5, "max": 1}'),
                               ("DELETE", "/v1/functions/" + hf.token, None)]:
        r = requests.request(method, "http://%s%s" % (hf.admin, path), data=body, timeout=10,
                             headers={"Authorization": "Bearer " + hf.token})
        assert r.status_code >= 400, (method, path, r.status_code)
        if path.endswith(hf.token):
            continue  # a name the client chose may be named back; it is not the header
        assert hf.token not in r.text, (method, path, r.text)


def test_held_requests_are_bounded_with_503(hf):
    """One instance with room for one request and a queue of 3: of 12 requests sent while
    it is busy, at most 3 are held and the rest get 503 at once, never more memory."""
    hf.deploy_app("q", scale={"min": 1, "max": 1, "concurrency": 1},
                  queue={"max": 3, "timeout": "30s"})
    wait_for(lambda: hf.gw("/function/q/").status_code == 200, 30, what="q to answer")
    results = []
    lock = threading.Lock()

    def call(path):
        r = requests.get("http://%s/function/q%s" % (hf.gateway, path), timeout=60)
        with lock:
            results.append((r.status_code, r.text))

    busy = threading.Thread(target=call, args=("/slow?s=3",))
    busy.start()
    wait_for(lambda: sum(i["inflight"] for i in hf.instances("q")) == 1, 10, what="q to be busy")
    ts = [threading.Thread(target=call, args=("/",)) for _ in range(12)]
    for t in ts:
        t.start()
    for t in ts + [busy]:
        t.join()
    codes = sorted(c for c, _ in results)
    assert codes.count(200) >= 2 and codes.count(200) <= 4, codes  # busy + at most 3 held
    refused = [t for c, t in results if c == 503]
    assert len(refused) >= 9, codes
    for t in refused:
        j = json.loads(t)
        assert j["status"] == 503 and "queue" in j["error"], j
