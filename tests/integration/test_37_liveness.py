"""test_37_liveness.py -- health.liveness: ready instances keep being checked; one that fails
the check N times in a row is replaced, one that passes is left alone."""
from conftest import holds_for, wait_for

COLD = 30
LIVENESS = {"interval": "200ms", "failures": 3, "timeout": "150ms"}


def ready_ids(f, name):
    return [i["id"] for i in f.instances(name) if i["state"] == "ready"]


def deploy(f, name):
    f.deploy_app(name, app="sickapp.py", scale={"min": 1, "max": 1},
                 health={"path": "/healthz", "liveness": LIVENESS})
    return wait_for(lambda: ready_ids(f, name), COLD, what="a ready instance of %s" % name)[0]


def replaced(f, name, old):
    """Waits for a ready instance other than old, with old gone, and returns its id."""
    def other():
        ids = [i["id"] for i in f.instances(name)]
        ready = [i for i in ready_ids(f, name) if i != old]
        return ready[0] if ready and old not in ids else None
    return wait_for(other, COLD, what="i-%d of %s to be replaced" % (old, name))


def events(f, name):
    return [e["what"] for e in f.function(name)["events"]]


def test_spec_shows_liveness(flint):
    deploy(flint, "live-spec")
    h = flint.function("live-spec")["spec"]["health"]
    assert h["liveness"] == {"interval": "200ms", "failures": 3, "timeout": "150ms"}
    assert h["path"] == "/healthz"


def test_healthy_instance_is_kept(flint):
    first = deploy(flint, "live-ok")
    # Seven checks pass: the same instance stays, and nothing about liveness is recorded.
    holds_for(lambda: ready_ids(flint, "live-ok"), [first], 1.5, what="the healthy instance")
    assert not [e for e in events(flint, "live-ok") if "liveness" in e]


def test_failing_check_replaces_instance(flint):
    first = deploy(flint, "live-sick")
    token = flint.gw("/function/live-sick/id", timeout=COLD).text
    assert flint.gw("/function/live-sick/sicken", timeout=COLD).status_code == 200
    second = replaced(flint, "live-sick", first)
    assert second != first
    assert "instance i-%d: liveness check failed 3 times; replacing it" % first in events(
        flint, "live-sick")
    # The new instance is a new process, healthy, and serves traffic.
    r = flint.gw("/function/live-sick/id", timeout=COLD)
    assert r.status_code == 200 and r.text != token
    holds_for(lambda: ready_ids(flint, "live-sick"), [second], 1.0, what="the new instance")


def test_check_that_never_answers_fails(flint):
    # /healthz hangs: the check's timeout, not a refused connection, must fail it.
    first = deploy(flint, "live-hang")
    assert flint.gw("/function/live-hang/freeze", timeout=COLD).status_code == 200
    replaced(flint, "live-hang", first)
    assert "instance i-%d: liveness check failed 3 times; replacing it" % first in events(
        flint, "live-hang")


def test_bad_liveness_spec_is_refused(flint):
    r = flint.api("PUT", "/v1/functions/live-bad",
                  json={"command": ["x"], "health": {"liveness": {"failures": 0}}})
    assert r.status_code == 400
    assert "health.liveness.failures: must be an integer between 1 and 100" in r.text
