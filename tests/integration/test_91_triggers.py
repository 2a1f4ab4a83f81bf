"""test_91_triggers.py -- triggers declared in flint.yaml: cron with seconds, shown by
`flint triggers ls`, firing through the durable async queue at the expected times."""
import json
import time

from conftest import wait_for
from test_90_async import deploy


def fires(state):
    p = state / "cron"
    if not p.exists():
        return []
    return [line.split(" ", 2) for line in p.read_text().splitlines()]


def test_cron_every_two_seconds(flint):
    state = deploy(flint, "tick", triggers=[{"cron": "*/2 * * * * *", "tz": "Asia/Shanghai",
                                              "payload": {"k": 1}}])
    wait_for(lambda: len(fires(state)) >= 3, 20, what="three cron fires")
    got = fires(state)
    for t, trig, body in got:
        t = float(t)
        # Scheduled on even seconds; the function sees it within a second.
        nearest = round(t / 2) * 2
        assert abs(t - nearest) <= 1.0 and t >= nearest - 0.05, got
        assert trig == "cron" and json.loads(body) == {"k": 1}
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    mine = [x for x in ls if x["function"] == "tick"]
    assert len(mine) == 1 and mine[0]["type"] == "cron" and mine[0]["state"] == "running"
    assert mine[0]["fired"] >= 3
    reqs = flint.api("GET", "/v1/requests?fn=tick").json()["requests"]
    assert reqs and all(r["source"] == "cron:*/2 * * * * *" for r in reqs)
    text = flint.gw("/metrics").text
    assert 'flint_cron_fire_delay_seconds_count{function="tick"' in text


def test_redeploy_without_triggers_stops_them(flint):
    state = deploy(flint, "tock", triggers=[{"cron": "@every 1s"}])
    wait_for(lambda: len(fires(state)) >= 1, 10, what="a fire")
    deploy(flint, "tock")
    n = len(fires(state))
    time.sleep(2.5)  # a stopped @every 1s trigger would fire twice in this time
    assert len(fires(state)) <= n + 1
    ls = flint.cli_json("triggers", "ls", "-o", "json")["triggers"]
    assert not [x for x in ls if x["function"] == "tock"]


def test_bad_trigger_specs_are_refused(flint):
    d = flint.base / "fn" / "badcron"
    d.mkdir(parents=True, exist_ok=True)
    for trig, msg in [({"cron": "* * *"}, "triggers[0].cron: a cron expression has 5 fields"),
                      ({"cron": "61 * * * *"}, "triggers[0].cron: cron field minutes"),
                      ({"cron": "@daily", "tz": "Mars/Olympus"}, "triggers[0].tz: unknown time zone"),
                      ({"cron": "@daily", "missed": "later"}, "triggers[0].missed")]:
        (d / "flint.yaml").write_text(json.dumps({"name": "badcron", "command": "true",
                                                  "triggers": [trig]}))
        r = flint.cli("deploy", d)
        assert r.returncode == 1 and msg in r.stderr, (trig, r.stderr)


def test_missed_run_once_after_downtime(fresh_flint):
    f = fresh_flint
    # Every minute on second 0 is too slow to wait for; @every 2s with run-once fires
    # at start when the last fire is older than the interval.
    state = deploy(f, "catchup", triggers=[{"cron": "@every 2s", "missed": "run-once"}])
    wait_for(lambda: len(fires(state)) >= 1, 10, what="a fire")
    f.stop()
    n = len(fires(state))
    time.sleep(3)
    t0 = time.time()
    f.start()
    wait_for(lambda: len(fires(state)) > n, 10, what="the missed fire")
    assert float(fires(state)[n][0]) - t0 < 1.5
