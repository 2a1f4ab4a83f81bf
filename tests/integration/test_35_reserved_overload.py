"""test_35_reserved_overload.py -- reserved instances are the last choice; an
instance that says it is overloaded is steered away from and scaled past."""
import threading
import time

from conftest import holds_for, wait_for

COLD = 30


def kinds(flint, name):
    return sorted((i["kind"], i["state"]) for i in flint.instances(name))


def test_reserved_instance_takes_only_the_overflow(flint):
    flint.deploy_app("resv", app="busyapp.py",
                     scale={"min": 1, "max": 1, "concurrency": 1, "reserved": 1,
                            "idle_timeout": "60s"})
    wait_for(lambda: kinds(flint, "resv") == [("elastic", "ready"), ("reserved", "ready")],
             COLD, what="one elastic and one reserved instance ready")
    # One at a time, nothing spills: the elastic instance always has room.
    for _ in range(20):
        assert flint.gw("/function/resv/").status_code == 200
    assert flint.function("resv")["spills"] == 0

    # The elastic instance is busy for a second: the next request goes to the
    # reserved one at once instead of waiting (no Server-Timing hold).
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=flint.gw("/function/resv/sleep")))
    t.start()
    wait_for(lambda: flint.function("resv")["instances"]["ready"] == 2 and
             sum(i["inflight"] for i in flint.instances("resv")) == 1, 5,
             what="the slow request to be under way")
    t0 = time.monotonic()
    r = flint.gw("/function/resv/")
    took = time.monotonic() - t0
    assert r.status_code == 200
    assert "Server-Timing" not in r.headers
    assert took < 0.9, "the overflow request waited %.2fs instead of going to the reserved one" % took
    t.join()
    assert slow["r"].status_code == 200
    assert flint.function("resv")["spills"] == 1
    m = flint.gw("/metrics").text
    assert 'flint_reserved_spills_total{function="resv"} 1' in m
    assert 'flint_reserved_instances{function="resv"} 1' in m


def test_overloaded_instance_triggers_scale_up(flint):
    flint.deploy_app("busy503", app="busyapp.py",
                     scale={"min": 1, "max": 3, "idle_timeout": "60s"})
    wait_for(lambda: flint.function("busy503")["instances"]["ready"] == 1, COLD,
             what="the first instance")
    r = flint.gw("/function/busy503/overloaded")
    assert r.status_code == 503
    assert r.headers.get("X-Flint-Overloaded") == "1"
    wait_for(lambda: flint.function("busy503")["overloads"] >= 1, 5, what="the overload count")
    # An overloaded instance makes the autoscaler add one at once, with a reason.
    wait_for(lambda: flint.function("busy503")["instances"]["ready"] >= 2, COLD,
             what="a second instance after the overload signal")
    events = [e["what"] for e in flint.function("busy503")["events"]]
    assert any("overloaded" in e for e in events), events
    m = flint.gw("/metrics").text
    assert 'flint_overload_signals_total{function="busy503"}' in m
    # While it is marked, new requests go to the other instance and succeed.
    for _ in range(5):
        assert flint.gw("/function/busy503/").status_code == 200
    # And it does not scale down while the signal is fresh (held for the window).
    holds_for(lambda: flint.function("busy503")["instances"]["ready"] >= 2, True, 1.0,
              what="two instances right after the overload")
