"""test_50_lifecycle.py -- the daemon's own life: restart, graceful stop, crash, cleanup."""
import signal
import threading

from conftest import alive, proc_start_time, wait_for

COLD = 30


def test_restart_keeps_functions(fresh_flint):
    f = fresh_flint
    f.deploy_app("keep", env={"K": "v"})
    r = f.gw("/function/keep/echo", timeout=COLD)
    assert r.status_code == 200
    assert f.stop() == 0

    f.start()
    ls = f.cli_json("ls", "-o", "json")
    assert [x["name"] for x in ls["functions"]] == ["keep"]
    d = f.function("keep")
    assert d["version"] == 1
    assert d["spec"]["env"] == {"K": "v"}
    r = f.gw("/function/keep/echo?after=restart", timeout=COLD)
    assert r.status_code == 200
    assert r.json()["query"] == "after=restart"


def test_sigterm_drains_inflight_request(fresh_flint):
    f = fresh_flint
    f.deploy_app("drain")
    r = f.gw("/function/drain/", timeout=COLD)
    assert r.status_code == 200
    result = {}

    def slow():
        try:
            result["r"] = f.gw("/function/drain/slow?s=2", timeout=30)
        except Exception as e:  # reported below with the assertion
            result["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: any(i["inflight"] == 1 for i in f.instances("drain")), 10,
             what="the slow request to reach the instance")
    f.signal(signal.SIGTERM)
    t.join(30)
    assert "e" not in result, "the in-flight request failed during shutdown: %r" % result.get("e")
    assert (result["r"].status_code, result["r"].content) == (200, b"slept 2\n")
    assert f.wait_exit(20) == 0
    f.check_no_leftovers()


def test_sigkill_leaves_no_instances_after_next_start(fresh_flint):
    f = fresh_flint
    f.deploy_app("orphan", scale={"min": 1})
    (inst,) = wait_for(lambda: [i for i in f.instances("orphan") if i["state"] == "ready"], COLD,
                       what="the min instance")
    pid = inst["pid"]
    st = proc_start_time(pid)
    assert st is not None
    f.kill9()

    f.start()
    wait_for(lambda: not alive(pid, st), 10, what="the instance of the killed daemon to be gone")
    # min 1 brings a new instance, not the old process.
    (inst2,) = wait_for(lambda: [i for i in f.instances("orphan") if i["state"] == "ready"], COLD,
                        what="a new min instance")
    assert inst2["pid"] != pid
    r = f.gw("/function/orphan/echo")
    assert r.status_code == 200


def test_sigterm_with_idle_instances_exits_clean(fresh_flint):
    f = fresh_flint
    f.deploy_app("a", scale={"min": 2})
    f.deploy_app("b")
    wait_for(lambda: len([i for i in f.instances("a") if i["state"] == "ready"]) == 2, COLD,
             what="two instances of a")
    assert f.gw("/function/b/", timeout=COLD).status_code == 200
    pids = [i["pid"] for i in f.instances("a") + f.instances("b")]
    assert len(pids) == 3
    assert f.stop() == 0  # also checks nothing is left
    assert all(proc_start_time(p) is None for p in pids)
