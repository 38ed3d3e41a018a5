"""One virtual environment per peer, holding that peer's current PyPI release.

Peers pin different Redis clients (redis-py, coredis, kombu...), so each gets its own venv
under ``$FENNEL_BENCH_VENVS`` (default ``~/.cache/fennel-bench/venvs``). Fennel itself runs
from the interpreter that runs the benchmark (the project checkout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: What ``pip install`` gets for each peer, and which distributions' versions we report.
PACKAGES: dict[str, tuple[list[str], list[str]]] = {
    "arq": (["arq"], ["arq", "redis"]),
    # saq imports typing_extensions without declaring it on some releases.
    "saq": (["saq[hiredis]", "typing_extensions"], ["saq", "redis"]),
    "taskiq": (["taskiq", "taskiq-redis"], ["taskiq", "taskiq-redis", "redis"]),
    "streaq": (["streaq"], ["streaq", "coredis"]),
    "dramatiq": (["dramatiq[redis]"], ["dramatiq", "redis"]),
    "celery": (["celery[redis]"], ["celery", "kombu", "redis"]),
    "rq": (["rq"], ["rq", "redis"]),
}


def venv_root() -> Path:
    default = Path.home() / ".cache" / "fennel-bench" / "venvs"
    return Path(os.environ.get("FENNEL_BENCH_VENVS", default))


def python_of(peer: str) -> str:
    """The interpreter that runs ``peer``'s driver (ours for Fennel)."""
    if peer == "fennel":
        return sys.executable
    return str(venv_root() / peer / "bin" / "python")


def ensure(peer: str, log=print) -> dict[str, str | None]:
    """Create ``peer``'s venv if missing (installing its current release); its versions."""
    if peer == "fennel":
        return _versions(sys.executable, ["fennel-queue", "redis", "hiredis", "orjson"])
    packages, report = PACKAGES[peer]
    root = venv_root() / peer
    marker = root / ".fennel-bench-ok"
    if not marker.exists():
        log(f"creating venv for {peer} in {root} ...")
        root.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([_base_python(), "-m", "venv", "--clear", str(root)], check=True)
        pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q",
               "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=False, capture_output=True)
        subprocess.run([*pip, *packages], check=True)
        marker.write_text("ok\n")
    return _versions(python_of(peer), report)


def ensure_all(peers: list[str], log=print) -> dict[str, dict[str, str | None]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {p: pool.submit(ensure, p, log) for p in peers}
    return {p: f.result() for p, f in futures.items()}


def _base_python() -> str:
    # A venv's python can create venvs too; prefer the base interpreter when we know it.
    base = getattr(sys, "_base_executable", None)
    return base if base and os.path.exists(base) else sys.executable


def _versions(python: str, dists: list[str]) -> dict[str, str | None]:
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = metadata.version(d)\n"
        "    except metadata.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([python, "-c", code, *dists], capture_output=True, text=True,
                          check=True)
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


if __name__ == "__main__":
    print(json.dumps(ensure_all(sys.argv[1:] or list(PACKAGES)), indent=1))
