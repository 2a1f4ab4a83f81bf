"""test_92_redis.py -- Redis Streams triggers against a real redis-server started here:
entries reach the function and are acknowledged after success, failing entries end in
the dead-letter stream, and a Redis restart mid-stream loses nothing."""
import json
import shutil
import subprocess
import time

import pytest

from conftest import free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")


class Redis:
    """A redis-server of the test's own, with an append-only file so that a restart keeps
    the streams, their groups and their pending entries."""

    def __init__(self, base):
        self.dir = base / "redis"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.cli("PING") == "PONG", 10, what="redis-server to answer")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
            self.proc.wait(10)

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0 or "Could not connect" in r.stdout + r.stderr:
            raise OSError("redis-cli %s: %s%s" % (" ".join(map(str, args)), r.stdout, r.stderr))
        return r.stdout.strip()

    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def pending(self, stream, group):
        return int(self.cli("XPENDING", stream, group).splitlines()[0])


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    r = Redis(tmp_path_factory.mktemp("redis")).start()
    yield r
    r.stop()


def deploy(flint, name, redis_spec, **spec):
    state = flint.base / ("state-" + name)
    state.mkdir(exist_ok=True)
    flint.deploy_app(name, app="eventapp.py", env={"STATE": str(state)}, sandbox=False,
                     triggers=[{"redis": redis_spec}], **spec)
    wait_for(lambda: trigger(flint, name)["state"] == "running", 15,
             what="the Redis trigger of %s to run" % name)
    return state


def trigger(flint, name):
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    mine = [x for x in ls if x["function"] == name]
    assert len(mine) == 1, ls
    return mine[0]


def events(state):
    p = state / "events.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_entry_delivered_and_acked(flint, redis):
    state = deploy(flint, "rs-ok", {"url": redis.url(), "stream": "orders"})
    eid = redis.cli("XADD", "orders", "*", "order", "42", "item", "tea")
    got = wait_for(lambda: events(state), 20, what="the entry to reach the function")
    assert len(got) == 1
    ev = got[0]
    assert json.loads(ev["body"]) == {"order": "42", "item": "tea"}
    assert ev["trigger"] == "redis" and ev["content_type"] == "application/json"
    assert eid in ev["request_id"]
    wait_for(lambda: redis.pending("orders", "flint-rs-ok") == 0 and
             trigger(flint, "rs-ok")["acked"] == 1, 10, what="the entry to be acknowledged")
    # The group really saw it delivered (not only nothing pending).
    info = redis.cli("XINFO", "GROUPS", "orders")
    assert "flint-rs-ok" in info and eid in info
    req = flint.api("GET", "/v1/requests?fn=rs-ok").json()["requests"]
    assert [r["source"] for r in req] == ["redis:orders"] and req[0]["status"] == "succeeded"
    # The group's lag behind the stream is exported (nothing left to read).
    wait_for(lambda: 'flint_trigger_redis_lag{function="rs-ok",stream="orders"} 0'
             in flint.gw("/metrics").text, 10, what="flint_trigger_redis_lag 0")
    text = flint.gw("/metrics").text
    assert ('flint_trigger_redis_entries_total{function="rs-ok",stream="orders",'
            'outcome="acked"} 1') in text


def test_failing_entry_goes_to_dead_letter(flint, redis):
    state = deploy(flint, "rs-fail", {"url": redis.url(), "stream": "jobs",
                                      "dead_letter": "jobs-dead", "group": "workers"},
                   **{"async": {"retries": 1, "backoff_min": "100ms", "backoff_max": "200ms"}})
    good = redis.cli("XADD", "jobs", "*", "job", "fine")
    bad = redis.cli("XADD", "jobs", "*", "job", "fail-me")
    wait_for(lambda: redis.cli("XLEN", "jobs-dead") == "1", 30,
             what="the failing entry in the dead-letter stream")
    out = redis.cli("XRANGE", "jobs-dead", "-", "+").splitlines()
    fields = dict(zip(out[1::2], out[2::2]))
    assert fields["job"] == "fail-me" and fields["flint.id"] == bad
    assert fields["flint.stream"] == "jobs"
    assert "dead" in fields["flint.reason"] and "500" in fields["flint.reason"], fields
    wait_for(lambda: redis.pending("jobs", "workers") == 0, 10,
             what="both entries to be acknowledged")
    tries = [e for e in events(state) if "fail-me" in e["body"]]
    assert [e["attempt"] for e in tries] == ["1", "2"]  # retries: 1
    assert [json.loads(e["body"]) for e in events(state) if "fine" in e["body"]] == [
        {"job": "fine"}]
    t = trigger(flint, "rs-fail")
    assert t["acked"] == 1 and t["dead_lettered"] == 1 and t["group"] == "workers"
    assert good in flint.api("GET", "/v1/requests?fn=rs-fail").text


def test_redis_restart_loses_nothing(flint, tmp_path):
    r = Redis(tmp_path).start()
    try:
        state = deploy(flint, "rs-restart", {"url": r.url(), "stream": "ev", "batch": 3,
                                             "concurrency": 4})
        for i in range(20):
            r.cli("XADD", "ev", "*", "n", i)
        r.stop()  # mid-stream: some entries are delivered, some running, some unread
        time.sleep(1.5)  # the consumer notices and backs off
        assert trigger(flint, "rs-restart")["state"].startswith("connecting")
        r.start()
        for i in range(20, 30):
            r.cli("XADD", "ev", "*", "n", i)

        def all_seen():
            return {int(json.loads(e["body"])["n"]) for e in events(state)} == set(range(30))

        wait_for(all_seen, 60, what="all 30 entries to reach the function")
        wait_for(lambda: r.pending("ev", "flint-rs-restart") == 0, 20,
                 what="every entry to be acknowledged")
        seen = [int(json.loads(e["body"])["n"]) for e in events(state)]
        print("entries run twice after the restart: %d" % (len(seen) - len(set(seen))))
        assert "lost Redis" in flint.log_tail(400) and "answers again" in flint.log_tail(400)
    finally:
        r.stop()


def test_bad_redis_specs_are_refused(flint):
    d = flint.base / "fn" / "badredis"
    d.mkdir(parents=True, exist_ok=True)
    for trig, msg in [({"redis": {"url": "http://x"}}, "triggers[0].redis.url: must be a URL"),
                      ({"redis": {"url": "redis://x"}}, "triggers[0].redis.stream: is required"),
                      ({"redis": {"stream": "s", "claim_after": "soon"}},
                       "triggers[0].redis.claim_after: must be a duration"),
                      ({"redis": {"stream": "s", "batch": 0}}, "triggers[0].redis.batch")]:
        (d / "flint.yaml").write_text(json.dumps({"name": "badredis", "command": "true",
                                                  "triggers": [trig]}))
        r = flint.cli("deploy", d)
        assert r.returncode == 1 and msg in r.stderr, (trig, r.stderr)


def test_flint_killed_mid_stream_resumes_its_pending_entries(fresh_flint, redis):
    f = fresh_flint
    state = deploy(f, "rs-crash", {"url": redis.url(), "stream": "crash", "concurrency": 2})
    # The function runs slowly enough for entries to be outstanding at the kill.
    for i in range(10):
        redis.cli("XADD", "crash", "*", "n", i, "slow", "yes")
    wait_for(lambda: events(state), 20, what="a first entry to run")
    f.kill9()
    assert redis.pending("crash", "flint-rs-crash") > 0
    f.start()

    def all_seen():
        return {int(json.loads(e["body"])["n"]) for e in events(state)} == set(range(10))

    wait_for(all_seen, 60, what="all 10 entries to reach the function")
    wait_for(lambda: redis.pending("crash", "flint-rs-crash") == 0, 20,
             what="every entry to be acknowledged")


def test_redeploy_without_trigger_stops_consuming(flint, redis):
    state = deploy(flint, "rs-stop", {"url": redis.url(), "stream": "stop-me"})
    flint.deploy_app("rs-stop", app="eventapp.py", env={"STATE": str(state)}, sandbox=False)
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    assert not [x for x in ls if x["function"] == "rs-stop"]
    redis.cli("XADD", "stop-me", "*", "k", "v")
    # The group stays in Redis; with nobody reading, the entry is never delivered.
    time.sleep(1.5)
    assert events(state) == []
    assert redis.pending("stop-me", "flint-rs-stop") == 0
