"""test_38_readiness.py -- how flint decides that a starting instance is ready: in its first
milliseconds it asks the kernel whether the port is listening (sock_diag) instead of
connecting, so a TCP readiness check costs the instance no connection at all, an HTTP check
is only sent once something listens, and a port that is bound but not yet listening is not
ready."""
import pytest

from conftest import Flint, wait_for

COLD = 30


def stats(f, name):
    r = f.gw("/function/%s/stats" % name, timeout=COLD)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def test_tcp_check_makes_no_connection(flint):
    flint.deploy_app("ready-tcp", app="lateapp.py", scale={"min": 0, "max": 1})
    # The first request starts the instance; the only connection it ever accepted is the
    # one carrying that request.
    assert stats(flint, "ready-tcp") == {"conns": 1, "healthz": 0}


def test_tcp_check_makes_no_connection_in_an_isolated_network(flint):
    flint.deploy_app("ready-iso", app="lateapp.py", network="isolated",
                     scale={"min": 0, "max": 1})
    assert stats(flint, "ready-iso") == {"conns": 1, "healthz": 0}


def test_http_check_is_sent_only_to_a_listener(flint):
    flint.deploy_app("ready-http", app="lateapp.py", health={"path": "/healthz"},
                     scale={"min": 0, "max": 1})
    s = stats(flint, "ready-http")
    # Every connection but the request's own carried a health check that was answered.
    assert s["healthz"] >= 1 and s["conns"] == s["healthz"] + 1, s


def test_bound_is_not_listening(flint):
    flint.deploy_app("ready-late", app="lateapp.py", env={"LISTEN_DELAY_MS": "400"},
                     scale={"min": 0, "max": 1})
    s = stats(flint, "ready-late")
    assert s == {"conns": 1, "healthz": 0}, s
    (inst,) = wait_for(lambda: [i for i in flint.instances("ready-late") if i["state"] == "ready"],
                       COLD, what="the instance of ready-late")
    # Ready only once it listened: after the delay, not when it bound its port.
    assert inst["cold_start_ms"] >= 400, inst


@pytest.fixture(scope="module")
def connecting(tmp_path_factory):
    f = Flint(tmp_path_factory.mktemp("connecting"), extra_args=["--readiness", "connect"]).start()
    yield f
    f.close()


def test_connect_readiness_is_the_fallback(connecting):
    # Told not to ask the kernel (as when it cannot answer), flint connects: the instance
    # sees one more connection, and a bound port that does not listen is still not ready.
    connecting.deploy_app("conn-tcp", app="lateapp.py", scale={"min": 0, "max": 1})
    assert stats(connecting, "conn-tcp") == {"conns": 2, "healthz": 0}
    connecting.deploy_app("conn-iso", app="lateapp.py", network="isolated",
                          scale={"min": 0, "max": 1})
    assert stats(connecting, "conn-iso") == {"conns": 2, "healthz": 0}
    connecting.deploy_app("conn-late", app="lateapp.py", env={"LISTEN_DELAY_MS": "400"},
                          scale={"min": 0, "max": 1})
    assert stats(connecting, "conn-late")["healthz"] == 0
    (inst,) = wait_for(lambda: [i for i in connecting.instances("conn-late")
                                if i["state"] == "ready"], COLD, what="conn-late's instance")
    assert inst["cold_start_ms"] >= 400, inst
