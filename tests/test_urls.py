"""Passwords stay masked whatever they contain ('@', ':', '/', '#', '?', percent-encoded or
not): in repr(app), in errors, in the worker's start-up line and in `fennel info`; a URL that
cannot work fails at App(...) with a ConfigurationError that shows it masked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from fennel import App
from fennel._redis_url import mask_url
from fennel.client import read_dead
from fennel.exceptions import ConfigurationError, ConnectionFailed
from fennel.settings import Settings
from fennel.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Tail0fS3cret"


@pytest.mark.parametrize(("url", "masked"), [
    (f"redis://:p@ss@{SECRET}@host:6379/0", "redis://:***@host:6379/0"),
    (f"redis://user:{SECRET}@x@host/1", "redis://user:***@host/1"),
    (f"redis://:{quote('p@s/s#w?' + SECRET, safe='')}@host:6379/0", "redis://:***@host:6379/0"),
    (f"rediss://u:{SECRET}:more@host:6380/0", "rediss://u:***@host:6380/0"),
    (f"redis://{SECRET}@host", "redis://***@host"),
    (f"unix:///tmp/r.sock?db=1&password={SECRET}", "unix:///tmp/r.sock?db=1&password=***"),
])
def test_every_password_is_masked(url, masked):
    assert mask_url(url) == masked
    app = App("urls", redis_url=url)
    assert SECRET not in repr(app) and SECRET not in repr(app.settings)
    assert mask_url(f"Cannot reach Redis at {url} while x") == (
        f"Cannot reach Redis at {masked} while x")


@pytest.mark.parametrize("url", [
    f"redis://:pa#ss{SECRET}@host:6379/0",
    f"redis://:pa/ss{SECRET}@host:6379/0",
    f"redis://:pa?ss{SECRET}@host:6379/0",
    f"redis://u:{SECRET}@host:notaport/0",
    "redis://:secret@",
])
def test_a_malformed_url_fails_at_app_masked(url):
    with pytest.raises(ConfigurationError) as info:
        App("urls", redis_url=url)
    text = str(info.value)
    assert "redis_url" in text and SECRET not in text, text
    assert "redis://" in text
    with pytest.raises(ConfigurationError):
        Settings.resolve({}, environ={"FENNEL_REDIS_URL": url})


def test_password_with_at_sign_masked_in_worker_log_and_info(tmp_path, start_worker):
    password = f"p@ss:{SECRET}"
    srv = RedisServer(data_dir=str(tmp_path / "redis"), password=password)
    (tmp_path / "redis").mkdir()
    srv.start()
    try:
        url = f"redis://:{password}@127.0.0.1:{srv.port}/0"  # '@' and ':' not encoded
        w = start_worker("tests.apps.basic:app", env={"FENNEL_REDIS_URL": url})
        assert w.wait_for("worker.started")["redis"] == f"redis://:***@127.0.0.1:{srv.port}/0"
        out = subprocess.run(
            [sys.executable, "-m", "fennel", "info", "--app", "tests.apps.basic:app"],
            cwd=ROOT, env={**os.environ, "FENNEL_REDIS_URL": url}, capture_output=True,
            text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "***@127.0.0.1" in out.stdout
        w.stop()
        text = "\n".join(w.raw) + out.stdout + out.stderr
        assert SECRET not in text and "ss:" not in text.replace("redis://:***@", "")
    finally:
        srv.kill()


@pytest.mark.parametrize("url", [
    f"redis://:pass word {SECRET}@127.0.0.1:1/0",
    f"redis://user:{SECRET}\tx@127.0.0.1:1/0",
    f"redis://:a b{SECRET}@127.0.0.1:notaport/0",
])
def test_a_password_with_whitespace_is_masked(url):
    """Redis passwords may hold spaces; the URL is still one URL, masked up to its last '@'."""
    assert SECRET not in mask_url(url)
    try:
        app = App("urls", redis_url=url, connect_timeout=0.5, socket_timeout=0.5)
    except ConfigurationError as exc:
        assert "redis_url" in str(exc) and SECRET not in str(exc), exc
        return
    try:
        assert SECRET not in repr(app)
        with pytest.raises(ConnectionFailed) as info:
            read_dead(app)
        assert SECRET not in str(info.value) and "***" in str(info.value), info.value
    finally:
        app.close()
