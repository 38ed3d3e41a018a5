"""Scenario 25: password, ACL and TLS (``rediss://``) URLs; wrong passwords fail fast;
secrets never appear in a log line or an error."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from fennel.exceptions import ConnectionFailed
from fennel.testing import RedisServer, free_port
from tests.reliability.tlsproxy import TLSProxy

PASSWORD = "s3cret-Pa55"
USER_PW = "u5er-Secret"


@pytest.fixture
def locked(tmp_path: Path):
    srv = RedisServer(data_dir=str(tmp_path / "redis"), password=PASSWORD)
    (tmp_path / "redis").mkdir()
    srv.start()
    yield srv
    srv.kill()


def _no_secret(w, *secrets: str) -> None:
    text = "\n".join(w.raw)
    for s in secrets:
        assert s not in text, f"secret {s!r} leaked into the worker's output"


def test_25_password_url(locked, spawn, make_app):
    app = make_app(locked.url)
    w = spawn(locked.url)
    assert app.tasks["rel.work"].delay("pw").get(timeout=15) == "pw"
    assert w.wait_for("worker.started")["redis"] == f"redis://:***@127.0.0.1:{locked.port}/0"
    assert PASSWORD not in repr(app) and PASSWORD not in repr(app.settings)
    _no_secret(w, PASSWORD)


def test_25_wrong_password_fails_fast_and_masked(locked, spawn, make_app):
    bad = f"redis://:wrong-{PASSWORD}@127.0.0.1:{locked.port}/0"
    app = make_app(bad)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        app.tasks["rel.work"].delay("x")
    assert time.monotonic() - t0 < 2
    assert PASSWORD not in str(info.value) and "***" in str(info.value)
    # A worker with the wrong password keeps retrying, and never prints it.
    w = spawn(bad, ready=False)
    w.wait_for("worker.connect_failed", 20)
    time.sleep(0.5)
    _no_secret(w, PASSWORD)


def test_25_acl_user_url(locked, spawn, make_app):
    r = redis.Redis.from_url(locked.url)
    r.execute_command("ACL", "SETUSER", "fennel-app", "on", f">{USER_PW}", "~fennel:*",
                      "&fennel:*", "+@all")
    url = f"redis://fennel-app:{USER_PW}@127.0.0.1:{locked.port}/0"
    app = make_app(url)
    w = spawn(url)
    assert app.tasks["rel.work"].delay("acl").get(timeout=15) == "acl"
    assert w.wait_for("worker.started")["redis"].startswith("redis://fennel-app:***@")
    _no_secret(w, USER_PW, PASSWORD)
    # A user that may not touch the keys: a clear error, no secret.
    r.execute_command("ACL", "SETUSER", "nobody", "on", f">{USER_PW}", "~other:*", "+@all")
    app2 = make_app(f"redis://nobody:{USER_PW}@127.0.0.1:{locked.port}/0")
    with pytest.raises(Exception) as info:
        app2.tasks["rel.work"].delay("x")
    assert USER_PW not in str(info.value)
    r.close()


@pytest.fixture
def tls_server(tmp_path: Path):
    """``(server, tls_port, cert)``: the server's own TLS port when its binary has TLS, else
    a TLS-terminating proxy in front of its plain port (the bundled valkey-server has none)."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - documented in docs/reliability.md
        pytest.fail("the TLS test needs the openssl CLI to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    (tmp_path / "redis").mkdir()
    tls_port = free_port()
    srv = RedisServer(data_dir=str(tmp_path / "redis"), password=PASSWORD, extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"])
    proxy: TLSProxy | None = None
    try:
        if os.environ.get("FENNEL_TEST_TLS_PROXY"):
            raise RuntimeError("the proxy was asked for")
        srv.start()
    except RuntimeError:  # the binary has no TLS: it exits at start
        srv.extra_args = []
        srv.start()
        proxy = TLSProxy("127.0.0.1", srv.port, cert, key).start()
        tls_port = proxy.port
    yield srv, tls_port, cert
    if proxy is not None:
        proxy.close()
    srv.kill()


def test_25_tls_rediss_url(tls_server, spawn, make_app):
    _srv, tls_port, cert = tls_server
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
    app = make_app(url)
    w = spawn(url)
    assert app.tasks["rel.work"].delay("tls").get(timeout=15) == "tls"
    assert w.wait_for("worker.started")["redis"].startswith("rediss://:***@")
    _no_secret(w, PASSWORD)
    # plain TCP to the TLS port does not work: the traffic really is TLS
    plain = make_app(f"redis://:{PASSWORD}@127.0.0.1:{tls_port}/0", socket_timeout=1.0)
    with pytest.raises(ConnectionFailed):
        plain.tasks["rel.work"].delay("x")
