"""test_85_thrift.py -- Thrift functions: the unchanged Python server of examples/thrift-echo
called through flint by Python's thrift clients (THeader with `isn`, framed and buffered binary,
framed compact, multiplexed names) and by hand-built Kitex TTHeader frames with int keys.

The client code is generated from examples/thrift-echo/echo.thrift into a temporary directory,
and the example is deployed from a temporary copy whose thrift.port is a free port (9190 may be
taken on this host); nothing is written into examples/.
"""
import importlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, free_port, wait_for

from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol
from thrift.protocol.TMultiplexedProtocol import TMultiplexedProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TSocket, TTransport
from thrift.transport.THeaderTransport import THeaderClientType, THeaderSubprotocolID

EXAMPLE = ROOT / "examples" / "thrift-echo"
COLD = 60  # a first call may include the build step and a cold start
FN = "thrift-echo"


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The EchoService module and its types, generated for this run."""
    d = tmp_path_factory.mktemp("thrift-gen")
    subprocess.run(["thrift", "--gen", "py", "-o", str(d), str(EXAMPLE / "echo.thrift")],
                   check=True, capture_output=True)
    sys.path.insert(0, str(d / "gen-py"))
    try:
        svc = importlib.import_module("echo.EchoService")
        ttypes = importlib.import_module("echo.ttypes")
    finally:
        sys.path.remove(str(d / "gen-py"))
    return svc, ttypes


def example_copy(base, name, port, services="EchoService", scale_min=0):
    """A copy of examples/thrift-echo with its name, services, dedicated port and min changed."""
    d = base / ("fn-" + name)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for f in ("echo.thrift", "echo_server.py"):
        shutil.copy(EXAMPLE / f, d / f)
    y = (EXAMPLE / "flint.yaml").read_text()
    y, n1 = re.subn(r"(?m)^name: .*$", "name: %s" % name, y)
    y, n2 = re.subn(r"(?m)^(\s*)port: 9190\s*$", r"\g<1>port: %d" % port, y)
    y, n3 = re.subn(r"(?m)^(\s*)services: \[EchoService\]", r"\g<1>services: [%s]" % services, y)
    y, n4 = re.subn(r"(?m)^(\s*)min: 0\s*$", r"\g<1>min: %d" % scale_min, y)
    assert (n1, n2, n3, n4) == (1, 1, 1, 1), "examples/thrift-echo/flint.yaml changed shape:\n" + y
    (d / "flint.yaml").write_text(y)
    return d


class Echo:
    """The deployed echo function: its name and dedicated port."""

    def __init__(self, flint, name, port):
        self.flint = flint
        self.name = name
        self.port = port


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def echo(flint, gen, tmp_path_factory):
    port = free_port()
    d = example_copy(tmp_path_factory.mktemp("thrift-fn"), FN, port)
    flint.cli_ok("deploy", d)
    flint.track()
    wait_for(lambda: port_open(port), 10, what="the dedicated port %d to listen" % port)
    e = Echo(flint, FN, port)
    # The first call builds (thrift --gen py) and starts an instance.
    c = HeaderClient(flint, gen)
    try:
        assert c.client.echo("warm") == "warm"
    finally:
        c.close()
    return e


# -- Python clients -------------------------------------------------------------------

def tsocket(port, timeout=COLD):
    s = TSocket.TSocket("127.0.0.1", port)
    s.setTimeout(timeout * 1000)
    return s


class HeaderClient:
    """THeaderProtocol client (headers only) on the gateway port, naming a service with isn."""

    def __init__(self, flint, gen, isn=b"EchoService", proto=THeaderSubprotocolID.BINARY,
                 timeout=COLD):
        self.sock = tsocket(flint.gw_port, timeout)
        self.proto = THeaderProtocol.THeaderProtocol(self.sock, [THeaderClientType.HEADERS],
                                                     default_protocol=proto)
        if isn is not None:
            self.proto.trans.set_header(b"isn", isn)
        self.client = gen[0].Client(self.proto)
        self.sock.open()

    def close(self):
        self.sock.close()


class PlainClient:
    """Framed or buffered, binary or compact, optionally multiplexed."""

    def __init__(self, gen, port, framed=True, compact=False, service=None, timeout=COLD):
        self.sock = tsocket(port, timeout)
        trans = TTransport.TFramedTransport(self.sock) if framed else \
            TTransport.TBufferedTransport(self.sock)
        proto = TCompactProtocol.TCompactProtocol(trans) if compact else \
            TBinaryProtocol.TBinaryProtocol(trans)
        if service:
            proto = TMultiplexedProtocol(proto, service)
        self.client = gen[0].Client(proto)
        trans.open()

    def close(self):
        self.sock.close()


# -- hand-built frames ----------------------------------------------------------------

def bin_call(method, seqid, fields=(), mtype=TMessageType.CALL):
    """A strict binary message; fields: (id, "s"|"i", value) of the args struct."""
    b = struct.pack(">iI", -0x7fff0000 | mtype, len(method)) + method.encode() + \
        struct.pack(">i", seqid)
    for fid, kind, v in fields:
        if kind == "s":
            v = v.encode()
            b += struct.pack(">bhI", 11, fid, len(v)) + v
        else:
            b += struct.pack(">bhi", 8, fid, v)
    return b + b"\x00"


def echo_call(msg, seqid):
    return bin_call("echo", seqid, [(1, "s", msg)])


def tt_frame(payload, hseqid, to_service="EchoService", to_method="echo", timeout_ms=None,
             framed_payload=False, flags=0):
    """A Kitex TTHeader frame: binary protocol, int key/values 6, 9 (and 12), padding."""
    kv = []
    if to_service is not None:
        kv.append((6, to_service))
    if to_method is not None:
        kv.append((9, to_method))
    if timeout_ms is not None:
        kv.append((12, str(timeout_ms)))
    h = struct.pack(">BB", 0, 0) + struct.pack(">BH", 0x10, len(kv))
    for k, v in kv:
        h += struct.pack(">HH", k, len(v)) + v.encode()
    h += b"\x00" * (-len(h) % 4)
    if framed_payload:
        payload = struct.pack(">I", len(payload)) + payload
    return struct.pack(">IHHIH", 10 + len(h) + len(payload), 0x1000, flags, hseqid,
                       len(h) // 4) + h + payload


def header_frame(magic, payload, hseqid, header):
    """A THeader (0x0FFF) or TTHeader (0x1000) frame with the header bytes given (padded
    here)."""
    header += b"\x00" * (-len(header) % 4)
    return struct.pack(">IHHIH", 10 + len(header) + len(payload), magic, 0, hseqid,
                       len(header) // 4) + header + payload


def theader_frame(payload, hseqid, header):
    return header_frame(0x0FFF, payload, hseqid, header)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(b), n))
        b += chunk
    return b


def read_frame(s):
    n, = struct.unpack(">I", recv_exact(s, 4))
    return struct.pack(">I", n) + recv_exact(s, n)


def split_header_frame(frame):
    """(magic, flags, hseqid, header bytes, payload) of a THeader/TTHeader frame."""
    magic, flags, hseqid, words = struct.unpack(">HHIH", frame[4:14])
    end = 14 + 4 * words
    assert end <= len(frame), "header size past the end of the reply frame"
    return magic, flags, hseqid, frame[14:end], frame[end:]


def unframe_payload(payload):
    """A TTHeader payload is a binary message, or a u32 length and then one."""
    if payload[:2] == b"\x80\x01":
        return payload, False
    n, = struct.unpack(">I", payload[:4])
    assert n == len(payload) - 4, "inner length %d, payload %d" % (n, len(payload))
    return payload[4:], True


def parse_bin_reply(msg):
    """(type, name, seqid, {field id: value}) of a binary message whose struct holds strings
    and i32s only (replies of echo/slow, TApplicationException)."""
    ver, nlen = struct.unpack(">II", msg[:8])
    assert ver & 0xffff0000 == 0x80010000, "not strict binary: %#x" % ver
    mtype = ver & 0xff
    name = msg[8:8 + nlen].decode()
    seqid, = struct.unpack(">i", msg[8 + nlen:12 + nlen])
    p = 12 + nlen
    fields = {}
    while msg[p] != 0:
        ftype, fid = struct.unpack(">bh", msg[p:p + 3])
        p += 3
        if ftype == 11:
            n, = struct.unpack(">I", msg[p:p + 4])
            fields[fid] = msg[p + 4:p + 4 + n].decode()
            p += 4 + n
        elif ftype == 8:
            fields[fid], = struct.unpack(">i", msg[p:p + 4])
            p += 4
        else:
            raise AssertionError("unexpected field type %d" % ftype)
    assert p == len(msg) - 1, "bytes after the struct"
    return mtype, name, seqid, fields


def read_app_exception(payload, compact=False):
    """Python's thrift library reading a TApplicationException message."""
    buf = TTransport.TMemoryBuffer(payload)
    p = TCompactProtocol.TCompactProtocol(buf) if compact else TBinaryProtocol.TBinaryProtocol(buf)
    name, mtype, seqid = p.readMessageBegin()
    assert mtype == TMessageType.EXCEPTION, mtype
    x = TApplicationException()
    x.read(p)
    p.readMessageEnd()
    return name, seqid, x


def raw(port, timeout=COLD):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s, timeout=10):
    """True when the peer closes s (EOF or reset) within timeout, reading anything it sends."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def log_has(flint, pattern, timeout=5):
    return wait_for(lambda: re.search(pattern, flint.log_path.read_text(errors="replace")),
                    timeout, what="daemon log to match %r" % pattern)


def metrics(flint):
    text = flint.gw("/metrics").text
    out = {}
    for m in re.finditer(r'^flint_thrift_calls_total\{function="([^"]+)",outcome="([a-z]+)"\} (\d+)$',
                         text, re.M):
        out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


# -- THeader clients on the gateway port ------------------------------------------------

def test_theader_echo(echo, gen):
    c = HeaderClient(echo.flint, gen)
    try:
        assert c.client.echo("hello thrift") == "hello thrift"
        assert c.client.echo("") == ""
        big = "x" * 300000
        assert c.client.echo(big) == big
    finally:
        c.close()


def test_theader_several_calls_one_connection(echo, gen):
    # Python's THeader client sends the isn header with the first call only: the later
    # calls go where the first one went.
    c = HeaderClient(echo.flint, gen)
    try:
        for i in range(25):
            assert c.client.echo("call %d" % i) == "call %d" % i
    finally:
        c.close()


def test_theader_compact(echo, gen):
    c = HeaderClient(echo.flint, gen, proto=THeaderSubprotocolID.COMPACT)
    try:
        assert c.client.echo("compact inside THeader") == "compact inside THeader"
        assert c.client.echo("again") == "again"
    finally:
        c.close()


def test_application_exception_passes_through(echo, gen):
    c = HeaderClient(echo.flint, gen)
    try:
        with pytest.raises(gen[1].EchoError) as ei:
            c.client.fail("boom")
        assert ei.value.message == "boom"
        assert c.client.echo("still here") == "still here"
    finally:
        c.close()


def test_oneway_then_echo(echo, gen):
    c = HeaderClient(echo.flint, gen)
    try:
        c.client.note("oneway-marker-1")
        assert c.client.echo("after note") == "after note"
    finally:
        c.close()
    wait_for(lambda: "note: oneway-marker-1" in echo.flint.cli_ok("logs", FN).stdout, 10,
             what="the oneway call to reach the instance")


# -- Kitex TTHeader frames on the gateway port --------------------------------------------

@pytest.mark.parametrize("framed_payload", [False, True], ids=["plain", "framed-payload"])
def test_ttheader_kitex_echo(echo, framed_payload):
    s = raw(echo.flint.gw_port)
    try:
        for i, (hseq, mseq) in enumerate([(1000, 7), (1001, 8), (0x7ffffff0, -5)]):
            msg = "kitex %d %s" % (i, framed_payload)
            s.sendall(tt_frame(echo_call(msg, mseq), hseq, timeout_ms=5000,
                               framed_payload=framed_payload, flags=0))
            magic, flags, hseqid, _, payload = split_header_frame(read_frame(s))
            assert magic == 0x1000
            assert hseqid == hseq
            inner, was_framed = unframe_payload(payload)
            assert was_framed == framed_payload
            mtype, name, seqid, fields = parse_bin_reply(inner)
            assert (mtype, name, seqid) == (TMessageType.REPLY, "echo", mseq)
            assert fields == {0: msg}
    finally:
        s.close()


def test_ttheader_pipelined_in_order(echo):
    s = raw(echo.flint.gw_port)
    try:
        s.sendall(b"".join(tt_frame(echo_call("p%d" % i, i), 500 + i) for i in range(1, 11)))
        for i in range(1, 11):
            _, _, hseqid, _, payload = split_header_frame(read_frame(s))
            mtype, name, seqid, fields = parse_bin_reply(unframe_payload(payload)[0])
            assert (hseqid, seqid, fields) == (500 + i, i, {0: "p%d" % i}), "reply %d" % i
    finally:
        s.close()


def test_framed_binary_pipelined_on_dedicated_port(echo):
    s = raw(echo.port)
    try:
        s.sendall(b"".join(struct.pack(">I", len(c)) + c
                           for c in (echo_call("f%d" % i, i) for i in range(1, 11))))
        for i in range(1, 11):
            frame = read_frame(s)
            mtype, name, seqid, fields = parse_bin_reply(frame[4:])
            assert (mtype, seqid, fields) == (TMessageType.REPLY, i, {0: "f%d" % i})
    finally:
        s.close()


# -- header-less clients ----------------------------------------------------------------

def test_framed_binary_dedicated_port(echo, gen):
    c = PlainClient(gen, echo.port, framed=True)
    try:
        for i in range(5):
            assert c.client.echo("framed %d" % i) == "framed %d" % i
        with pytest.raises(gen[1].EchoError):
            c.client.fail("framed boom")
    finally:
        c.close()


def test_framed_compact_dedicated_port(echo, gen):
    c = PlainClient(gen, echo.port, framed=True, compact=True)
    try:
        assert c.client.echo("framed compact") == "framed compact"
    finally:
        c.close()


def test_buffered_binary_dedicated_port(echo, gen):
    c = PlainClient(gen, echo.port, framed=False)
    try:
        for i in range(5):
            assert c.client.echo("buffered %d" % i) == "buffered %d" % i
        big = "b" * 200000
        assert c.client.echo(big) == big
    finally:
        c.close()


def test_buffered_on_gateway_port_is_closed(echo):
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        s.sendall(echo_call("no service named", 1))
        assert closed_by_peer(s), "a buffered client on the gateway port was not closed"
    finally:
        s.close()
    log_has(echo.flint, r"closing the connection from 127\.0\.0\.1: an unframed \(buffered\) "
                        r"Thrift client carries no service name")


# -- unknown services: exceptions in the client's own framing --------------------------------

def test_unknown_service_theader(echo, gen):
    c = HeaderClient(echo.flint, gen, isn=b"Nope", timeout=10)
    try:
        with pytest.raises(TApplicationException) as ei:
            c.client.echo("x")
        assert ei.value.type == TApplicationException.UNKNOWN_METHOD
        assert "Nope" in ei.value.message
        # The reply came in THeader framing: Python's client read it with headers only.
        assert c.proto.trans._client_type == THeaderClientType.HEADERS
    finally:
        c.close()


def test_unknown_service_multiplexed_framed_compact(echo, gen):
    c = PlainClient(gen, echo.flint.gw_port, framed=True, compact=True, service="Nope", timeout=10)
    try:
        with pytest.raises(TApplicationException) as ei:
            c.client.echo("x")
        assert ei.value.type == TApplicationException.UNKNOWN_METHOD
        assert "Nope" in ei.value.message
        # The connection stays usable: a second call gets the same answer.
        with pytest.raises(TApplicationException):
            c.client.echo("y")
    finally:
        c.close()


def test_unknown_service_ttheader(echo):
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        for framed_payload in (False, True):
            s.sendall(tt_frame(echo_call("x", 33), 77, to_service="Nope",
                               framed_payload=framed_payload))
            magic, _, hseqid, _, payload = split_header_frame(read_frame(s))
            assert (magic, hseqid) == (0x1000, 77)
            inner, was_framed = unframe_payload(payload)
            assert was_framed == framed_payload
            name, seqid, x = read_app_exception(inner)
            assert (name, seqid, x.type) == ("echo", 33, TApplicationException.UNKNOWN_METHOD)
            assert "Nope" in x.message
    finally:
        s.close()


def test_python_reads_exceptions_of_every_framing(tmp_path):
    """The exception writer's output for all six framings (dumped by the unit test) read by
    Python's thrift library."""
    subprocess.run(["make", "-s", "build/tests/test_thrift_wire"], cwd=str(ROOT), check=True,
                   capture_output=True)
    env = {"FL_TW_DUMP": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(ROOT / "build" / "tests" / "test_thrift_wire")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = "unknown service Nope: no function declares it"
    seen = set()
    for f in sorted(tmp_path.glob("*.bin")):
        data = f.read_bytes()
        kind = f.stem
        compact = "compact" in kind
        if kind.startswith("unframed"):
            name, seqid, x = read_app_exception(data, compact)
        elif kind.startswith("framed"):
            buf = TTransport.TFramedTransport(TTransport.TMemoryBuffer(data))
            p = TCompactProtocol.TCompactProtocol(buf) if compact else \
                TBinaryProtocol.TBinaryProtocol(buf)
            name, mtype, seqid = p.readMessageBegin()
            assert mtype == TMessageType.EXCEPTION
            x = TApplicationException()
            x.read(p)
        elif kind.startswith("theader"):
            p = THeaderProtocol.THeaderProtocol(TTransport.TMemoryBuffer(data),
                                                [THeaderClientType.HEADERS])
            name, mtype, seqid = p.readMessageBegin()
            assert mtype == TMessageType.EXCEPTION
            assert p.trans.protocol_id == (THeaderSubprotocolID.COMPACT if compact
                                           else THeaderSubprotocolID.BINARY)
            assert (p.trans.sequence_id & 0xffffffff, p.trans.flags) == (0xdeadbeef, 3)
            x = TApplicationException()
            x.read(p)
        else:
            magic, flags, hseqid, _, payload = split_header_frame(data)
            assert (magic, flags, hseqid) == (0x1000, 3, 0xdeadbeef)
            if kind.endswith("_framed"):
                n, = struct.unpack(">I", payload[:4])
                assert n == len(payload) - 4
                payload = payload[4:]
            name, seqid, x = read_app_exception(payload, compact)
        assert (name, seqid, x.type, x.message) == ("Nope:echo", -7, 1, text), kind
        seen.add(kind)
    assert seen == {"unframed_binary", "unframed_compact", "framed_binary", "framed_compact",
                    "theader_binary", "theader_compact", "ttheader_binary",
                    "ttheader_binary_framed", "ttheader_compact", "ttheader_compact_framed"}


# -- malformed input ---------------------------------------------------------------------

def assert_still_serving(echo, gen):
    assert echo.flint.proc.poll() is None, "flint serve exited"
    c = HeaderClient(echo.flint, gen)
    try:
        assert c.client.echo("still serving") == "still serving"
    finally:
        c.close()


def test_oversized_frame_closed(echo, gen):
    for port in (echo.flint.gw_port, echo.port):
        s = raw(port, timeout=10)
        try:
            # A declared length of 2 GiB - 1: over the 16 MiB maximum, refused from the
            # length alone (nothing else is sent).
            s.sendall(struct.pack(">I", 0x7fffffff) + b"\x80\x01\x00\x01" + b"\x00" * 8)
            assert closed_by_peer(s), "an oversized frame did not close the connection"
        finally:
            s.close()
    log_has(echo.flint, r"closing the connection from 127\.0\.0\.1: frame length 2147483647 is "
                        r"invalid or over 16777216 bytes")
    assert_still_serving(echo, gen)


def test_truncated_theader_closed(echo, gen):
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        f = bytearray(theader_frame(echo_call("x", 1), 1, b"\x00\x00"))
        f[12:14] = struct.pack(">H", 0x4000)  # 64 KiB of header in a frame of 40 bytes
        s.sendall(bytes(f))
        assert closed_by_peer(s)
    finally:
        s.close()
    log_has(echo.flint, r"closing the connection from 127\.0\.0\.1: header size past the end "
                        r"of the frame")
    assert_still_serving(echo, gen)


def test_bad_varint_closed(echo, gen):
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        s.sendall(theader_frame(echo_call("x", 1), 1, b"\x80\x80\x80\x80"))
        assert closed_by_peer(s)
    finally:
        s.close()
    log_has(echo.flint, r"closing the connection from 127\.0\.0\.1: bad varint")
    # TTHeader whose int key/value block announces two pairs and holds one.
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        h = b"\x00\x00" + struct.pack(">BHHH", 0x10, 2, 6, 11) + b"EchoService"
        s.sendall(header_frame(0x1000, echo_call("x", 1), 1, h))
        assert closed_by_peer(s)
    finally:
        s.close()
    log_has(echo.flint, r"closing the connection from 127\.0\.0\.1: truncated TTHeader info block")
    assert_still_serving(echo, gen)


# -- deadlines, failures, cold starts ---------------------------------------------------------

def test_rpc_timeout(echo, gen):
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        t0 = time.monotonic()
        s.sendall(tt_frame(bin_call("slow", 41, [(1, "s", "zz"), (2, "i", 2000)]), 4242,
                           to_method="slow", timeout_ms=300))
        magic, _, hseqid, _, payload = split_header_frame(read_frame(s))
        elapsed = time.monotonic() - t0
        assert (magic, hseqid) == (0x1000, 4242)
        name, seqid, x = read_app_exception(unframe_payload(payload)[0])
        assert (name, seqid, x.type) == ("slow", 41, TApplicationException.INTERNAL_ERROR)
        assert "timeout" in x.message
        assert elapsed < 1.0, "the RPCTimeout of 300 ms answered after %.2fs" % elapsed
        # The connection goes on with the next call.
        s.sendall(tt_frame(echo_call("after timeout", 42), 4243))
        _, _, hseqid, _, payload = split_header_frame(read_frame(s))
        assert parse_bin_reply(unframe_payload(payload)[0])[2:] == (42, {0: "after timeout"})
    finally:
        s.close()


def test_unknown_method_is_the_instance_exception(echo):
    s = raw(echo.flint.gw_port, timeout=COLD)
    try:
        s.sendall(tt_frame(bin_call("nosuch", 9), 1, to_method="nosuch"))
        _, _, _, _, payload = split_header_frame(read_frame(s))
        name, seqid, x = read_app_exception(unframe_payload(payload)[0])
        assert (name, seqid, x.type) == ("nosuch", 9, TApplicationException.UNKNOWN_METHOD)
    finally:
        s.close()


def test_metrics_by_outcome(echo, gen):
    before = metrics(echo.flint)
    c = HeaderClient(echo.flint, gen)
    try:
        for i in range(3):
            assert c.client.echo("m%d" % i) == "m%d" % i
    finally:
        c.close()
    test_unknown_method_is_the_instance_exception(echo)
    s = raw(echo.flint.gw_port, timeout=10)
    try:
        s.sendall(tt_frame(bin_call("slow", 1, [(1, "s", "x"), (2, "i", 1000)]), 1,
                           to_method="slow", timeout_ms=100))
        read_frame(s)
    finally:
        s.close()

    def grew():
        after = metrics(echo.flint)
        d = {k: after.get((FN, k), 0) - before.get((FN, k), 0)
             for k in ("reply", "exception", "error")}
        return d if d["reply"] >= 3 and d["exception"] >= 1 and d["error"] >= 1 else None
    wait_for(grew, 5, what="flint_thrift_calls_total to count replies, exceptions and errors")
    text = echo.flint.gw("/metrics").text
    assert "# TYPE flint_thrift_calls_total counter" in text


def test_crash_mid_call(echo, gen):
    before = {i["id"] for i in echo.flint.instances(FN)}
    c = HeaderClient(echo.flint, gen, timeout=20)
    try:
        t0 = time.monotonic()
        with pytest.raises(TApplicationException) as ei:
            c.client.crash()
        assert time.monotonic() - t0 < 5
        assert ei.value.type == TApplicationException.INTERNAL_ERROR
        assert "during the call" in ei.value.message
    finally:
        c.close()
    c = HeaderClient(echo.flint, gen)
    try:
        assert c.client.echo("after crash") == "after crash"
    finally:
        c.close()
    after = {i["id"] for i in echo.flint.instances(FN)}
    assert after - before, "no new instance after the crash: %s -> %s" % (before, after)


def test_cold_start_100_parallel_first_calls(flint, gen, tmp_path):
    port = free_port()
    d = example_copy(tmp_path, "thrift-cold", port, services="ColdEcho")
    flint.cli_ok("deploy", d)
    flint.track()
    assert [i for i in flint.instances("thrift-cold") if i.get("state") == "ready"] == []

    def one(i):
        c = HeaderClient(flint, gen, isn=b"ColdEcho")
        try:
            return c.client.echo("cold %d" % i)
        finally:
            c.close()
    with ThreadPoolExecutor(100) as ex:
        got = list(ex.map(one, range(100)))
    assert got == ["cold %d" % i for i in range(100)]
    assert metrics(flint).get(("thrift-cold", "reply"), 0) >= 100
    held = re.search(r'^flint_requests_held_total\{function="thrift-cold"\} (\d+)$',
                     flint.gw("/metrics").text, re.M)
    assert held and int(held.group(1)) >= 1, "no call was held for the cold start"
