"""test_20_gateway.py -- what the gateway does to requests and responses on the way through."""
import hashlib
import http.client
import re
import socket

import pytest

from conftest import vm_hwm_kib
from testapp import pattern

COLD = 30
MEM_BOUND_KIB = 200 * 1024  # the daemon's peak RSS while streaming gigabytes


@pytest.fixture(scope="module")
def echo(flint):
    flint.deploy_app("echo", scale={"max": 2})
    r = flint.gw("/function/echo/", timeout=COLD)
    assert (r.status_code, r.content) == (200, b"testapp\n")
    return flint


def test_prefix_stripped_query_kept(echo):
    r = echo.gw("/function/echo/echo/a/b?x=1&y=%20z&x=2")
    assert r.status_code == 200
    j = r.json()
    assert j["path"] == "/echo/a/b"
    assert j["query"] == "x=1&y=%20z&x=2"
    assert j["raw_target"] == "/echo/a/b?x=1&y=%20z&x=2"
    assert j["method"] == "GET"
    assert j["body_length"] == 0


def test_bare_function_path_becomes_root(echo):
    r = echo.gw("/function/echo")
    assert (r.status_code, r.content) == (200, b"testapp\n")
    r = echo.gw("/function/echo?x=1")
    assert (r.status_code, r.content) == (200, b"testapp\n")


def test_forwarded_headers(echo):
    r = echo.gw("/function/echo/echo", headers={"X-Test": "abc", "User-Agent": "flint-tests"})
    h = r.json()["headers"]
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-prefix"] == "/function/echo"
    assert h["x-test"] == "abc"
    assert h["user-agent"] == "flint-tests"

    # A client's own X-Forwarded-For is kept, with the peer appended.
    r = echo.gw("/function/echo/echo", headers={"X-Forwarded-For": "10.1.2.3"})
    assert r.json()["headers"]["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"


def test_host_routing(echo):
    r = echo.gw("/echo/x?y=1", host="echo.localhost")
    assert r.status_code == 200, r.text
    j = r.json()
    assert (j["path"], j["query"]) == ("/echo/x", "y=1")
    assert "x-forwarded-prefix" not in j["headers"] or j["headers"]["x-forwarded-prefix"] == ""

    r = echo.gw("/echo/port", host="echo.localhost:%d" % echo.gw_port)
    assert r.status_code == 200
    assert r.json()["path"] == "/echo/port"

    r = echo.gw("/echo", host="ECHO.LocalHost")
    assert r.status_code == 200

    r = echo.gw("/", host="nosuch.localhost")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert "nosuch" in r.json()["error"]

    # Another domain is not routed.
    r = echo.gw("/", host="echo.example.com")
    assert r.status_code == 404


def test_methods_and_bodies(echo):
    body = bytes(range(256)) * 4
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = echo.gw("/function/echo/echo", method=method, data=body)
        assert r.status_code == 200
        j = r.json()
        assert j["method"] == method
        assert j["body_length"] == 1024
        assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert j["headers"]["content-length"] == "1024"

    # A chunked body arrives whole (whatever framing the gateway uses upstream).
    r = echo.gw("/function/echo/echo", method="POST", data=iter([b"abc", b"defg"]))
    j = r.json()
    assert (j["body_length"], j["body_sha256"]) == (7, hashlib.sha256(b"abcdefg").hexdigest())

    r = echo.gw("/function/echo/", method="HEAD")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == "8"


def test_request_id(echo):
    r = echo.gw("/function/echo/echo")
    rid = r.headers["X-Flint-Request-Id"]
    assert re.fullmatch(r"[0-9A-Za-z_-]{8,64}", rid), rid
    assert r.json()["headers"]["x-flint-request-id"] == rid
    r2 = echo.gw("/function/echo/echo")
    assert r2.headers["X-Flint-Request-Id"] != rid

    r = echo.gw("/function/echo/echo", headers={"X-Flint-Request-Id": "client-id-123"})
    assert r.headers["X-Flint-Request-Id"] == "client-id-123"
    assert r.json()["headers"]["x-flint-request-id"] == "client-id-123"

    # Error responses made by the gateway carry one too.
    r = echo.gw("/function/nosuch/")
    assert r.status_code == 404
    assert r.headers["X-Flint-Request-Id"]
    r = echo.gw("/function/nosuch/", headers={"X-Flint-Request-Id": "abc-404"})
    assert r.headers["X-Flint-Request-Id"] == "abc-404"


def test_keep_alive_and_pipelining(echo):
    c = http.client.HTTPConnection("127.0.0.1", echo.gw_port, timeout=10)
    c.request("GET", "/function/echo/echo?n=1")
    r = c.getresponse()
    assert r.status == 200 and not r.will_close
    r.read()
    sock = c.sock
    for n in range(2, 6):
        c.request("GET", "/function/echo/echo?n=%d" % n)
        r = c.getresponse()
        assert r.status == 200
        assert b'"query": "n=%d"' % n in r.read()
        assert c.sock is sock, "the gateway closed a keep-alive connection"
    c.close()

    # Three pipelined requests on one connection are answered in order.
    s = socket.create_connection(("127.0.0.1", echo.gw_port), timeout=10)
    req = b"GET /function/echo/echo?p=%d HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req % 1 + req % 2 + (req % 3).replace(b"Host: x", b"Host: x\r\nConnection: close"))
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.count(b"HTTP/1.1 200 ") == 3
    assert data.index(b'"query": "p=1"') < data.index(b'"query": "p=2"') < data.index(b'"query": "p=3"')


def test_gateway_healthz(echo):
    r = echo.gw("/healthz")
    assert r.status_code == 200


def test_large_chunked_download(echo):
    size = 256 * 1024 * 1024 + 12345
    r = echo.gw("/function/echo/download?size=%d&chunk=65536" % size, stream=True, timeout=60)
    assert r.status_code == 200
    h = hashlib.sha256()
    n = 0
    for piece in r.iter_content(1 << 20):
        h.update(piece)
        n += len(piece)
    assert n == size
    assert h.hexdigest() == hashlib.sha256(pattern(size)).hexdigest()
    assert vm_hwm_kib(echo.proc.pid) < MEM_BOUND_KIB


def test_streaming_upload_1gib(echo):
    echo.deploy_app("upload", limits={"max_body": "2g", "timeout": "300s"})
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    total = 1 << 30
    expect = hashlib.sha256()
    sent = [0]

    def body():
        i = 0
        while sent[0] < total:
            # Vary each block so a repeated or dropped block changes the digest.
            piece = i.to_bytes(8, "big") + block[8:]
            expect.update(piece)
            sent[0] += len(piece)
            i += 1
            yield piece

    r = echo.gw("/function/upload/upload", method="POST", data=body(), timeout=300)
    assert r.status_code == 200, r.text
    assert r.json() == {"bytes": total, "sha256": expect.hexdigest()}
    hwm = vm_hwm_kib(echo.proc.pid)
    assert hwm < MEM_BOUND_KIB, "flint serve peaked at %d KiB while streaming 1 GiB" % hwm
