"""test_36_versions.py -- versions, rollback, a weighted traffic split, and
pinning a version with X-Flint-Version."""
from collections import Counter

import requests

from conftest import wait_for

COLD = 30


def deploy(flint, name, version_env):
    flint.deploy_app(name, app="versionapp.py", env={"VERSION": version_env},
                     scale={"min": 1, "max": 2, "idle_timeout": "60s"})


def answers(flint, name, n, headers=None):
    s = requests.Session()
    url = "http://%s/function/%s/" % (flint.gateway, name)
    out = Counter()
    for _ in range(n):
        r = s.get(url, headers=headers, timeout=COLD)
        assert r.status_code == 200, r.text
        out[r.text] += 1
    return out


def test_versions_split_pin_and_rollback(flint):
    deploy(flint, "ver", "one")
    deploy(flint, "ver", "two")
    vs = flint.cli_json("versions", "ver", "-o", "json")["versions"]
    assert [(v["version"], v["current"], v["weight"]) for v in vs] == [(1, False, 0), (2, True, 100)]
    # Version 1's instance keeps serving until version 2's is ready (a rolling
    # update), then only version 2 answers.
    wait_for(lambda: answers(flint, "ver", 20) == Counter({"two": 20}), COLD,
             what="version 2 to take over")

    # 90/10 between version 1 (run beside the current one) and version 2.
    flint.cli_ok("traffic", "ver", "v1=90", "v2=10")
    wait_for(lambda: any(f["name"] == "ver@v1" and f["instances"]["ready"] >= 1
                         for f in flint.cli_json("ls", "-o", "json")["functions"]),
             COLD, what="version 1 to run beside version 2")
    got = answers(flint, "ver", 1000)
    assert set(got) == {"one", "two"}, got
    assert 850 <= got["one"] <= 950, "version 1 got %d of 1000 (expected 900 +- 50)" % got["one"]

    # A pinned version gets every request; a version with no traffic is a 404.
    assert answers(flint, "ver", 30, headers={"X-Flint-Version": "2"}) == Counter({"two": 30})
    assert answers(flint, "ver", 30, headers={"X-Flint-Version": "v1"}) == Counter({"one": 30})
    r = requests.get("http://%s/function/ver/" % flint.gateway, headers={"X-Flint-Version": "7"})
    assert r.status_code == 404 and "version 7" in r.json()["error"]

    t = flint.cli_json("traffic", "ver", "-o", "json")
    assert t["weights"] == {"1": 90, "2": 10}

    # Rolling back deploys version 1's spec again as version 3, with all the
    # traffic; the split ends and the function run beside it goes away.
    out = flint.cli_ok("rollback", "ver", "1").stdout
    assert "version 3" in out
    wait_for(lambda: answers(flint, "ver", 10) == Counter({"one": 10}), COLD,
             what="version 3 (version 1's spec) to answer")
    wait_for(lambda: not any(f["name"].startswith("ver@")
                             for f in flint.cli_json("ls", "-o", "json")["functions"]),
             COLD, what="the old version's function to be removed")
    assert flint.cli_json("traffic", "ver", "-o", "json")["weights"] == {"3": 100}


def test_traffic_errors(flint):
    deploy(flint, "ver2", "a")
    r = flint.cli("traffic", "ver2", "v9=50", "v1=50")
    assert r.returncode == 1 and "no version 9" in r.stderr
    r = flint.cli("traffic", "ver2", "v1=0")
    assert r.returncode == 1 and "add up to 0" in r.stderr
    r = flint.cli("traffic", "ver2", "x")
    assert r.returncode == 2
    r = flint.cli("rollback", "ver2")
    assert r.returncode == 1 and "older version" in r.stderr
