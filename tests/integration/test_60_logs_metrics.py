"""test_60_logs_metrics.py -- instance output in `flint logs`, and the Prometheus /metrics."""
import queue
import re
import subprocess
import threading

from conftest import FLINT, wait_for

COLD = 30
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z i-\d+ (stdout|stderr|flint) (.*)$")


def test_logs_show_app_output(flint):
    flint.deploy_app("talky")
    r = flint.gw("/function/talky/log?msg=first-line", timeout=COLD)
    assert (r.status_code, r.content) == (200, b"logged\n")

    def logged():
        out = flint.cli_ok("logs", "talky").stdout.splitlines()
        return out if any(l.endswith(" stderr err: first-line") for l in out) else None

    lines = wait_for(logged, 10, what="the app's lines in flint logs")
    assert any(l.endswith(" stdout out: first-line") for l in lines), lines
    assert any(re.search(r" stdout testapp listening on 127\.0\.0\.1:\d+ pid \d+$", l) for l in lines), lines
    for l in lines:
        assert LINE.match(l), "malformed log line %r" % l

    # --tail keeps the last lines only.
    tail = flint.cli_ok("logs", "talky", "--tail", "1").stdout.splitlines()
    assert tail == lines[-1:]

    # The API gives the same lines.
    r = flint.api("GET", "/v1/functions/talky/logs?tail=1000")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text.splitlines()[-len(lines):] == lines


def test_logs_follow(flint):
    flint.deploy_app("follow")
    assert flint.gw("/function/follow/log?msg=before", timeout=COLD).status_code == 200
    argv = [str(FLINT), "logs", "follow", "-f", "--admin", flint.admin]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=flint.env())
    lines = queue.Queue()

    def reader():
        for line in p.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=reader, daemon=True).start()
    try:
        seen = []

        def saw(text):
            def check():
                while not lines.empty():
                    seen.append(lines.get())
                return any(l.endswith(text) for l in seen)
            return check

        wait_for(saw(" stdout out: before"), 10, what="the earlier line in logs -f")
        for i in range(3):
            assert flint.gw("/function/follow/log?msg=live-%d" % i).status_code == 200
            wait_for(saw(" stdout out: live-%d" % i), 10, what="line live-%d followed" % i)
            wait_for(saw(" stderr err: live-%d" % i), 10, what="stderr line live-%d followed" % i)
        assert p.poll() is None, "flint logs -f ended: %s" % p.stderr.read()
    finally:
        p.terminate()
        p.wait(10)


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} from the Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, "malformed metrics line %r" % line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def samples(metrics, name, **labels):
    return {k: v for k, v in metrics.items()
            if k[0] == name and all((a, b) in k[1] for a, b in labels.items())}


def test_metrics(flint):
    flint.deploy_app("counted")
    codes = []
    for i in range(5):
        codes.append(flint.gw("/function/counted/echo?i=%d" % i, timeout=COLD).status_code)
    assert codes == [200] * 5

    r = flint.gw("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    m = parse_metrics(r.text)

    req = samples(m, "flint_requests_total", function="counted")
    assert sum(req.values()) == 5, req
    assert samples(m, "flint_requests_total", function="counted", code="200")
    assert sum(samples(m, "flint_request_duration_seconds_count", function="counted").values()) == 5
    inf = samples(m, "flint_request_duration_seconds_bucket", function="counted", le="+Inf")
    assert list(inf.values()) == [5]
    assert list(samples(m, "flint_cold_starts_total", function="counted").values()) == [1]
    assert samples(m, "flint_instances", function="counted", state="ready") and \
        list(samples(m, "flint_instances", function="counted", state="ready").values()) == [1]
    assert list(samples(m, "flint_queue_depth", function="counted").values()) == [0]

    # A 502 is counted under its code.
    flint.gw("/function/counted/die")
    m = parse_metrics(flint.gw("/metrics").text)
    assert list(samples(m, "flint_requests_total", function="counted", code="502").values()) == [1]
