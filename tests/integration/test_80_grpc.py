"""test_80_grpc.py -- HTTP/2 and gRPC through the gateway: an unchanged grpcio server
(examples/grpc-greeter) called by grpcio clients, and plain HTTP/2 (curl) to HTTP/1.1 functions.

The client stubs are generated from examples/grpc-greeter/helloworld.proto into a temporary
directory; nothing is written into examples/.
"""
import hashlib
import importlib
import json
import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from conftest import PY, ROOT, vm_hwm_kib, wait_for

COLD = 60  # a first call may include the build step and a cold start
GREETER = ROOT / "examples" / "grpc-greeter"
MSG_MAX = 16 << 20
MIB = 1 << 20
CHANNEL_OPTS = [("grpc.max_send_message_length", MSG_MAX),
                ("grpc.max_receive_message_length", MSG_MAX),
                ("grpc.enable_http_proxy", 0)]
REQUEST_ID = re.compile(r"^[0-9a-f]{16}$")


def protoc(out_dir):
    subprocess.run([PY, "-m", "grpc_tools.protoc", "-I", str(GREETER), "--python_out=%s" % out_dir,
                    "--grpc_python_out=%s" % out_dir, "helloworld.proto"],
                   check=True, capture_output=True, cwd=str(out_dir))


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """(helloworld_pb2, helloworld_pb2_grpc), generated for this run."""
    d = tmp_path_factory.mktemp("stubs")
    protoc(d)
    sys.path.insert(0, str(d))
    try:
        pb2 = importlib.import_module("helloworld_pb2")
        pb2_grpc = importlib.import_module("helloworld_pb2_grpc")
    finally:
        sys.path.remove(str(d))
    return pb2, pb2_grpc


def channel(f, **extra):
    opts = list(CHANNEL_OPTS) + list(extra.items())
    return grpc.insecure_channel(f.gateway, options=opts)


def deploy_greeter(f, *extra):
    f.cli_ok("deploy", GREETER, *extra)
    f.track()
    return "grpc-greeter"


class Greeter:
    """A channel to the gateway and the Greeter stub on it."""

    def __init__(self, f, pb):
        self.flint = f
        self.pb2, pb2_grpc = pb
        self.ch = channel(f)
        self.stub = pb2_grpc.GreeterStub(self.ch)

    def req(self, **kw):
        return self.pb2.HelloRequest(**kw)

    def close(self):
        self.ch.close()


@pytest.fixture(scope="module")
def greeter(flint, pb):
    """examples/grpc-greeter deployed with `flint deploy DIR`, answering already."""
    deploy_greeter(flint)
    g = Greeter(flint, pb)
    r = g.stub.SayHello(g.req(name="warm-up"), timeout=COLD)
    assert r.message == "Hello, warm-up!"
    yield g
    g.close()


def metrics(f):
    """{(name, frozenset(labels)): value} from the gateway's /metrics."""
    r = f.gw("/metrics")
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, "malformed metrics line %r" % line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def sample(m, name, **labels):
    """The value of one sample, 0 if it is absent (counters are rendered once non-zero)."""
    return m.get((name, frozenset(labels.items())), 0.0)


# ---- gRPC: the four call shapes ------------------------------------------------------------


def test_unary_reply_and_trailing_metadata(greeter):
    reply, call = greeter.stub.SayHello.with_call(greeter.req(name="flint", payload=b"\x00\xffab"),
                                                  timeout=10)
    assert reply.message == "Hello, flint!"
    assert reply.payload == b"\x00\xffab"
    assert call.code() == grpc.StatusCode.OK
    # Binary metadata (-bin, base64 on the wire) arrives byte for byte.
    assert ("x-greeting-bin", b"\x00\x01\x02") in call.trailing_metadata()
    initial = dict(call.initial_metadata())
    assert REQUEST_ID.match(initial.get("x-flint-request-id", "")), initial


def test_unary_error_status_passes_through(greeter):
    with pytest.raises(grpc.RpcError) as ei:
        greeter.stub.SayHello(greeter.req(name=""), timeout=10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details() == "name must not be empty"


def test_server_streaming_10000(greeter):
    n = 10000
    got = [r.message for r in greeter.stub.SayHelloStream(greeter.req(name="s", count=n), timeout=30)]
    assert len(got) == n
    bad = [(i, m) for i, m in enumerate(got) if m != "Hello %d, s!" % i]
    assert not bad, "out of order or wrong: first %r" % (bad[:3],)


def test_client_streaming(greeter):
    names = ["c%d" % i for i in range(500)]
    reply = greeter.stub.SayHelloToMany((greeter.req(name=x) for x in names), timeout=30)
    assert reply.message == "Hello, %s!" % ", ".join(names)


def bidi(greeter, timeout=30):
    """Starts Chat; returns (send, responses, close)."""
    q = queue.Queue()

    def requests():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    return q.put, greeter.stub.Chat(requests(), timeout=timeout), lambda: q.put(None)


def test_bidi_interleaved_echo(greeter):
    send, responses, close = bidi(greeter)
    try:
        for i in range(100):
            payload = bytes([i]) * (i * 37)
            send(greeter.req(name="m%d" % i, payload=payload))
            r = next(responses)  # the reply to this message, before the next one is sent
            assert (r.message, r.payload) == ("Hello, m%d!" % i, payload)
    finally:
        close()
    assert list(responses) == []
    assert responses.code() == grpc.StatusCode.OK


def test_4mib_messages(greeter):
    payload = os.urandom(4 * MIB)
    reply = greeter.stub.SayHello(greeter.req(name="big", payload=payload), timeout=30)
    assert reply.message == "Hello, big!"
    assert len(reply.payload) == len(payload)
    assert hashlib.sha256(reply.payload).hexdigest() == hashlib.sha256(payload).hexdigest()

    # Both directions of a stream, too.
    send, responses, close = bidi(greeter)
    try:
        for i in range(3):
            p = os.urandom(4 * MIB)
            send(greeter.req(name="b%d" % i, payload=p))
            r = next(responses)
            assert r.message == "Hello, b%d!" % i and r.payload == p
    finally:
        close()
    assert list(responses) == []


# ---- gRPC: failures -------------------------------------------------------------------------


def grpc_frame(msg):
    data = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(data)) + data


def curl_h2(f, path, *args, data=None, tmp):
    """curl --http2-prior-knowledge: (status, headers and trailers as [(name, value)], body)."""
    hdr, body = tmp / "h.txt", tmp / "b.bin"
    argv = ["curl", "-sS", "--http2-prior-knowledge", "-D", str(hdr), "-o", str(body),
            "--max-time", "30", "http://%s%s" % (f.gateway, path)] + list(args)
    if data is not None:
        (tmp / "req.bin").write_bytes(data)
        argv += ["--data-binary", "@%s" % (tmp / "req.bin")]
    subprocess.run(argv, check=True, capture_output=True, timeout=40)
    lines = hdr.read_text(errors="replace").splitlines()
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
    return status, headers, body.read_bytes()


def test_deadline_exceeded(greeter, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        greeter.stub.SayHello(greeter.req(name="late", sleep_ms=2000), timeout=0.5)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 1.5

    # flint itself honours grpc-timeout: its answer, not the client's own deadline, ends the call.
    t0 = time.monotonic()
    status, headers, body = curl_h2(
        greeter.flint, "/helloworld.Greeter/SayHello", "-H", "content-type: application/grpc",
        "-H", "te: trailers", "-H", "grpc-timeout: 500m",
        data=grpc_frame(greeter.req(name="late", sleep_ms=2000)), tmp=tmp_path)
    elapsed = time.monotonic() - t0
    assert status == 200
    assert ("grpc-status", "4") in headers, headers
    assert elapsed < 1.8, "flint answered after %.2fs, the instance's own 2s sleep" % elapsed

    # The daemon still serves.
    reply = greeter.stub.SayHello(greeter.req(name="after"), timeout=10)
    assert reply.message == "Hello, after!"


def test_unknown_service_unimplemented(greeter):
    call = greeter.ch.unary_unary("/nope.Missing/Call")
    with pytest.raises(grpc.RpcError) as ei:
        call(b"", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "nope.Missing" in ei.value.details(), ei.value.details()
    # A known service with a method the server lacks is the server's UNIMPLEMENTED.
    with pytest.raises(grpc.RpcError) as ei:
        greeter.ch.unary_unary("/helloworld.Greeter/Nope")(b"", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def unary_crash(greeter):
    greeter.stub.SayHello(greeter.req(name="crash"), timeout=20)


def bidi_crash(greeter):
    send, responses, close = bidi(greeter, timeout=20)
    try:
        send(greeter.req(name="one"))
        assert next(responses).message == "Hello, one!"
        send(greeter.req(name="crash"))
        next(responses)
    finally:
        close()


@pytest.mark.parametrize("kill", [unary_crash, bidi_crash], ids=["unary", "bidi"])
def test_instance_killed_mid_call(greeter, kill):
    # Several rounds: the call right after a crash races with flint learning of it.
    f = greeter.flint
    for rnd in range(3):
        before = {i["id"] for i in f.instances("grpc-greeter")}
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            kill(greeter)
        elapsed = time.monotonic() - t0
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, (rnd, ei.value.code(),
                                                                ei.value.details())
        assert elapsed < 2.0, "round %d: UNAVAILABLE took %.2fs" % (rnd, elapsed)

        # The next call is served by a new instance, not failed on the dead one.
        try:
            reply = greeter.stub.SayHello(greeter.req(name="next%d" % rnd), timeout=COLD)
        except grpc.RpcError as e:
            raise AssertionError("round %d: the call after the crash failed: %s %s"
                                 % (rnd, e.code(), e.details()))
        assert reply.message == "Hello, next%d!" % rnd
        after = {i["id"] for i in f.instances("grpc-greeter")}
        assert after - before, "round %d: no new instance (before %s, after %s)" % (
            rnd, before, after)


def test_grpc_metrics(greeter):
    f = greeter.flint
    m0 = metrics(f)
    for i in range(5):
        greeter.stub.SayHello(greeter.req(name="m%d" % i), timeout=10)
    for i in range(2):
        with pytest.raises(grpc.RpcError):
            greeter.stub.SayHello(greeter.req(name=""), timeout=10)

    def counted():
        m = metrics(f)
        d = {s: sample(m, "flint_grpc_requests_total", function="grpc-greeter", grpc_status=s)
             - sample(m0, "flint_grpc_requests_total", function="grpc-greeter", grpc_status=s)
             for s in ("0", "3")}
        return m if d == {"0": 5, "3": 2} else None

    m = wait_for(counted, 5, what="5 OK and 2 INVALID_ARGUMENT in flint_grpc_requests_total")
    key = ("flint_stream_duration_seconds_count", frozenset({("function", "grpc-greeter")}))
    assert m[key] - m0.get(key, 0) == 7
    inf = ("flint_stream_duration_seconds_bucket",
           frozenset({("function", "grpc-greeter"), ("le", "+Inf")}))
    assert m[inf] == m[key]
    # And by method.
    meth = lambda mm, st: sample(mm, "flint_method_calls_total", function="grpc-greeter",
                                 method="helloworld.Greeter/SayHello", grpc_status=st)
    assert meth(m, "0") - meth(m0, "0") == 5
    assert meth(m, "3") - meth(m0, "3") == 2


# ---- plain HTTP/2 to HTTP/1.1 functions ------------------------------------------------------


@pytest.fixture(scope="module")
def hello_c(flint):
    flint.cli_ok("deploy", ROOT / "examples" / "hello-c")
    r = flint.gw("/function/hello-c/", timeout=COLD)
    assert (r.status_code, r.content) == (200, b"hello from C\n")
    return flint


def test_http2_prior_knowledge_to_http_function(hello_c, tmp_path):
    status, headers, body = curl_h2(hello_c, "/function/hello-c/", tmp=tmp_path)
    assert (status, body) == (200, b"hello from C\n")
    h = dict(headers)
    assert REQUEST_ID.match(h.get("x-flint-request-id", "")), headers
    assert h.get("content-length") == "13"
    assert "connection" not in h and "keep-alive" not in h and "transfer-encoding" not in h

    # HTTP/1.1 on the same port.
    r = hello_c.gw("/function/hello-c/")
    assert (r.status_code, r.content) == (200, b"hello from C\n")
    assert REQUEST_ID.match(r.headers["X-Flint-Request-Id"])

    # Upgrade: h2c (curl --http2 on a plain http URL) ends up on HTTP/2 too.
    out = subprocess.run(["curl", "-sS", "--http2", "-o", str(tmp_path / "u.bin"), "-w",
                          "%{http_version}", "http://%s/function/hello-c/" % hello_c.gateway],
                         capture_output=True, text=True, timeout=30, check=True)
    assert (out.stdout, (tmp_path / "u.bin").read_bytes()) == ("2", b"hello from C\n")


def test_http2_keeps_the_clients_request_id(greeter, hello_c, tmp_path):
    # As over HTTP/1.1: a sane X-Flint-Request-Id from the client is the request's id.
    r = hello_c.gw("/function/hello-c/", headers={"X-Flint-Request-Id": "0123456789abcdef"})
    assert r.headers["X-Flint-Request-Id"] == "0123456789abcdef"
    status, headers, body = curl_h2(hello_c, "/function/hello-c/", "-H",
                                    "x-flint-request-id: 0123456789abcdef", tmp=tmp_path)
    assert (status, dict(headers).get("x-flint-request-id")) == (200, "0123456789abcdef")
    reply, call = greeter.stub.SayHello.with_call(
        greeter.req(name="id"), metadata=(("x-flint-request-id", "grpc-req-42"),), timeout=10)
    assert dict(call.initial_metadata()).get("x-flint-request-id") == "grpc-req-42"


def test_http2_1mib_post_to_http1_app(flint, tmp_path):
    flint.deploy_app("h2echo")
    assert flint.gw("/function/h2echo/", timeout=COLD).status_code == 200
    body = os.urandom(MIB)
    digest = hashlib.sha256(body).hexdigest()
    status, headers, out = curl_h2(flint, "/function/h2echo/echo?x=1", "-H",
                                   "content-type: application/octet-stream", data=body,
                                   tmp=tmp_path)
    assert status == 200, out
    j = json.loads(out)
    assert (j["method"], j["path"], j["query"]) == ("POST", "/echo", "x=1")
    assert (j["body_length"], j["body_sha256"]) == (MIB, digest)
    assert j["headers"]["x-forwarded-proto"] == "http"
    assert j["headers"]["x-forwarded-prefix"] == "/function/h2echo"
    assert REQUEST_ID.match(j["headers"]["x-flint-request-id"])
    assert j["headers"]["x-flint-request-id"] == dict(headers)["x-flint-request-id"]

    # Without a length (curl -T - sends DATA frames of unknown total): chunked upstream.
    (tmp_path / "in.bin").write_bytes(body)
    with open(tmp_path / "in.bin", "rb") as stdin:
        r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-T", "-", "--max-time", "30",
                            "http://%s/function/h2echo/echo" % flint.gateway],
                           stdin=stdin, capture_output=True, timeout=40, check=True)
    j = json.loads(r.stdout)
    assert (j["method"], j["body_length"], j["body_sha256"]) == ("PUT", MIB, digest)


# ---- daemons of their own: the CLI flag and cold starts, flow control ------------------------


def test_cli_grpc_service_and_100_cold_calls(fresh_flint, pb, tmp_path):
    f = fresh_flint
    work = tmp_path / "g2"
    shutil.copytree(GREETER, work)
    protoc(work)
    f.cli_ok("deploy", "--name", "g2", "--grpc-service", "helloworld.Greeter", "--workdir", work,
             "--", PY, "greeter_server.py", "--port", "$PORT")
    f.track()
    d = f.function("g2")
    assert d["spec"]["protocol"] == "grpc", d["spec"]
    assert d["spec"]["grpc"] == {"services": ["helloworld.Greeter"]}, d["spec"]
    assert f.instances("g2") == []  # min 0: nothing runs before the first call

    pb2, pb2_grpc = pb
    chans = [channel(f) for _ in range(10)]
    try:
        stubs = [pb2_grpc.GreeterStub(c) for c in chans]

        def call(i):
            r, c = stubs[i % 10].SayHello.with_call(pb2.HelloRequest(name="p%d" % i), timeout=COLD)
            return r.message, dict(c.initial_metadata()).get("server-timing", "")

        with ThreadPoolExecutor(100) as ex:
            results = list(ex.map(call, range(100)))
    finally:
        for c in chans:
            c.close()
    assert [m for m, _ in results] == ["Hello, p%d!" % i for i in range(100)]
    assert any(t.startswith("cold;dur=") for _, t in results), results[:5]


def test_slow_reader_bounded_memory(fresh_flint, pb):
    """A 256 MiB server stream read slowly: flint holds at most a window per stream."""
    f = fresh_flint
    deploy_greeter(f)
    g = Greeter(f, pb)
    try:
        assert g.stub.SayHello(g.req(name="warm"), timeout=COLD).message == "Hello, warm!"
        before = vm_hwm_kib(f.proc.pid)
        n, size = 256, MIB
        payload = os.urandom(size)
        got = 0
        t0 = time.monotonic()
        for i, r in enumerate(g.stub.SayHelloStream(g.req(name="m", count=n, payload=payload),
                                                    timeout=60)):
            assert r.message == "Hello %d, m!" % i
            assert r.payload == payload
            got += 1
            # Slow at first: the instance could send all 256 MiB in this time.
            if i == 0:
                time.sleep(2)
            elif i < 10:
                time.sleep(0.1)
        elapsed = time.monotonic() - t0
        after = vm_hwm_kib(f.proc.pid)
        growth = (after - before) / 1024
        print("\nslow reader: %d MiB in %.1fs; flint VmHWM %d -> %d KiB (+%.1f MiB)"
              % (got * size // MIB, elapsed, before, after, growth))
        assert got == n
        assert growth < 64, "flint grew by %.1f MiB for one slow stream" % growth
    finally:
        g.close()


def test_isolated_greeter(fresh_flint, pb, tmp_path):
    """network: isolated over HTTP/2: gRPC calls and the gRPC health check reach an instance
    that lives in a network namespace of its own."""
    f = fresh_flint
    d = tmp_path / "greeter"
    shutil.copytree(GREETER, d)
    with open(d / "flint.yaml", "a") as y:
        y.write("network: isolated\n")
    f.cli_ok("deploy", d)
    f.track()
    assert f.function("grpc-greeter")["spec"]["network"] == "isolated"
    g = Greeter(f, pb)
    try:
        assert g.stub.SayHello(g.req(name="inside"), timeout=COLD).message == "Hello, inside!"
        msgs = [r.message for r in g.stub.SayHelloStream(g.req(name="s", count=3), timeout=COLD)]
        assert msgs == ["Hello %d, s!" % i for i in range(3)]
    finally:
        g.close()
    # Its port is not open on the host's loopback: only flint reaches it.
    port = [i for i in f.instances("grpc-greeter") if i["state"] == "ready"][0]["port"]
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", int(port))) != 0
    finally:
        s.close()
