"""test_30_scaling.py -- scale from zero, back to zero, bursts, the concurrency cap, min instances."""
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from conftest import holds_for, proc_start_time, wait_for

COLD = 30
COLD_TIMING = re.compile(r"(?:^|,\s*)cold;dur=\d+(?:\.\d+)?(?:\s*(?:,|$))")


def ready_count(flint, name):
    return sum(1 for i in flint.instances(name) if i["state"] == "ready")


def test_scale_from_zero_and_back(flint):
    flint.deploy_app("cold", scale={"idle_timeout": "1s"})
    assert flint.instances("cold") == []
    assert flint.function("cold")["state"] == "idle"

    r = flint.gw("/function/cold/echo", timeout=COLD)
    assert r.status_code == 200
    st = r.headers.get("Server-Timing", "")
    assert COLD_TIMING.search(st), "first request lacks Server-Timing cold;dur=: %r" % st

    # A warm request is not a cold start.
    r = flint.gw("/function/cold/echo")
    assert r.status_code == 200
    assert "cold" not in r.headers.get("Server-Timing", "")

    (inst,) = flint.instances("cold")
    assert inst["state"] == "ready"
    assert inst["cold_start_ms"] > 0
    pid = inst["pid"]

    wait_for(lambda: flint.instances("cold") == [], 20, what="scale to zero after idle_timeout 1s")
    wait_for(lambda: proc_start_time(pid) is None, 10, what="the idle instance's process to end")
    d = flint.function("cold")
    assert d["state"] == "idle"
    assert d["instances"] == {"starting": 0, "ready": 0, "draining": 0}

    # And up again.
    r = flint.gw("/function/cold/echo", timeout=COLD)
    assert r.status_code == 200
    assert COLD_TIMING.search(r.headers.get("Server-Timing", ""))


def test_fifty_parallel_first_requests(flint):
    flint.deploy_app("burst", scale={"max": 4})
    assert flint.instances("burst") == []
    n = 50
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        return flint.gw("/function/burst/echo?i=%d" % i, timeout=COLD)

    with ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(one, range(n)))
    assert [r.status_code for r in rs] == [200] * n
    assert [r.json()["query"] for r in rs] == ["i=%d" % i for i in range(n)]
    assert 1 <= len(flint.instances("burst")) <= 4


def test_concurrency_cap(flint):
    flint.deploy_app("capped", scale={"concurrency": 2, "max": 1})
    n = 12

    def one(i):
        return flint.gw("/function/capped/work?s=0.3&i=%d" % i, timeout=COLD)

    with ThreadPoolExecutor(n) as ex:
        rs = list(ex.map(one, range(n)))
    assert [r.status_code for r in rs] == [200] * n
    pids = {r.content for r in rs}
    assert len(pids) == 1, "max 1 instance, but answers came from %s" % pids
    stats = flint.gw("/function/capped/stats").json()
    assert stats["max_inflight"] == 2, stats
    assert b"worked %d\n" % stats["pid"] in pids
    assert len(flint.instances("capped")) == 1


def test_scale_min_keeps_an_instance(flint):
    flint.deploy_app("warm", scale={"idle_timeout": "1s"})
    assert flint.instances("warm") == []
    r = flint.cli_ok("scale", "warm", "--min", "1")
    assert "warm" in r.stdout
    (inst,) = wait_for(lambda: [i for i in flint.instances("warm") if i["state"] == "ready"], COLD,
                       what="an instance for min 1")
    d = flint.function("warm")
    assert (d["min"], d["spec"]["scale"]["min"]) == (1, 1)

    # It stays well past idle_timeout, the same process.
    holds_for(lambda: [(i["id"], i["pid"], i["state"]) for i in flint.instances("warm")],
              [(inst["id"], inst["pid"], "ready")], 3.0, what="the min instance")

    # The first request finds it warm.
    r = flint.gw("/function/warm/echo")
    assert r.status_code == 200
    assert "cold" not in r.headers.get("Server-Timing", "")

    flint.cli_ok("scale", "warm", "--min", "0")
    wait_for(lambda: flint.instances("warm") == [], 20, what="scale to zero after min 0")

    r = flint.cli("scale", "warm", "--min", "5", "--max", "2")
    assert r.returncode == 1
    assert "min" in r.stderr
