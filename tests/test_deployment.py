"""The deployment files: what the image takes in, who it runs as, pinned versions, and the
compose worker's command and health check run for real against a worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from fennel.testing import free_port
from tests.conftest import ROOT, WorkerProcess


def _service(name: str) -> str:
    text = (ROOT / "compose.yaml").read_text()
    match = re.search(rf"^  {name}:\n((?:    .*\n|\n)*)", text, re.MULTILINE)
    assert match, f"no service {name!r} in compose.yaml"
    return match.group(1)


def _list(block: str, key: str) -> list[str]:
    match = re.search(rf"^\s+{key}: (\[.*?\])", block, re.MULTILINE | re.DOTALL)
    assert match, f"no {key} in {block}"
    return list(json.loads(match.group(1)))


def _fennel(argv: list[str]) -> list[str]:
    assert argv[0] == "fennel"
    return [sys.executable, "-m", "fennel", *argv[1:]]


def test_image_takes_only_what_it_needs_and_runs_as_a_user():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "tests", "**/__pycache__"):
        assert path in ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY . ." not in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "the base image is pinned"
    for package in ("uvloop", "fastapi", "uvicorn"):
        assert re.search(rf"'{package}==[\d.]+'", dockerfile), package
    assert re.search(r"image: redis:\d+\.\d+\.\d+", (ROOT / "compose.yaml").read_text())


def test_readme_and_compose_agree_on_the_command():
    readme = (ROOT / "README.md").read_text()
    compose = (ROOT / "compose.yaml").read_text()
    assert "docker compose up --build" in compose
    assert "docker compose up --build" in readme


def test_compose_worker_and_its_health_check(redis_server):
    worker = _service("worker")
    health_port = str(free_port())
    env = {**os.environ, "FENNEL_REDIS_URL": redis_server.url, "FENNEL_LOG_FORMAT": "json",
           "FENNEL_HEALTH_PORT": health_port, "PYTHONUNBUFFERED": "1"}
    assert re.search(r'FENNEL_HEALTH_PORT: "\d+"', worker)
    w = WorkerProcess(_fennel(_list(worker, "command")), env)
    try:
        w.wait_for("worker.started", timeout=60)
        check = subprocess.run(_fennel(_list(worker, "test")[1:]), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.startswith("live: ok")
    finally:
        assert w.stop(timeout=60) == 0
