"""The benchmark driver: ``python -m benchmarks [--peers ...] [--scenarios ...] [--n N]``.

Starts a private Redis, makes sure every peer's venv exists, then runs every
(repetition x scenario x peer) in that order, so machine noise is spread over the peers, and
writes ``results.json``, ``results.png`` and the printed table (see ``report.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks import envs, report
from benchmarks.peers import _tally

ROOT = Path(__file__).resolve().parent.parent
PEERS = ["fennel", "arq", "saq", "taskiq", "streaq", "dramatiq", "celery", "rq"]
SCENARIOS = ["A", "B", "C", "D", "E"]
CLK = os.sysconf("SC_CLK_TCK")


def log(*words: object) -> None:
    print(time.strftime("%H:%M:%S"), *words, flush=True)


def group_cpu(pgids: set[int]) -> float:
    """CPU seconds (user+system, with reaped children) of every process in ``pgids``."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids:
            total += sum(int(x) for x in fields[11:15])
    return total / CLK


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, port: int) -> None:
        self.a = args
        self.url = url
        self.r = redis.Redis.from_url(url)
        self.logdir = Path(args.out) / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                    "FENNEL_BENCH_REDIS_PORT": str(port), "FENNEL_LOG_LEVEL": "warning"}
        self.specs: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []

    # -- subprocess plumbing ----------------------------------------------------------------

    def driver(self, peer: str, argv: list[str], env: dict[str, str] | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        cmd = [envs.python_of(peer), "-m", f"benchmarks.peers.{peer}", *argv]
        done = subprocess.run(cmd, cwd=ROOT, env={**self.env, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout or self.a.timeout)
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                if done.returncode == 0:
                    return result
        raise RuntimeError(f"{peer} {' '.join(argv)} failed (exit {done.returncode}):\n"
                           f"{done.stdout[-1500:]}\n{done.stderr[-3000:]}")

    def spec(self, peer: str) -> dict[str, Any]:
        if peer not in self.specs:
            self.specs[peer] = self.driver(peer, ["spec"], timeout=120)
        return self.specs[peer]

    def start(self, peer: str, cfg: dict[str, Any], tag: str,
              extra_env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
        env = {**self.env, **cfg.get("env", {}), **(extra_env or {})}
        procs = []
        for i, argv in enumerate(cfg["cmds"]):
            with open(self.logdir / f"{peer}-{tag}-{i}.log", "wb") as out:
                procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))
        return procs

    @staticmethod
    def stop(procs: list[subprocess.Popen[bytes]]) -> None:
        # Only the process groups we created are signalled.
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # results are in; do not wait long
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # stragglers (forked children) of that group
            p.wait()

    def record(self, peer: str, scenario: str, config: str, rep: int, **data: Any) -> None:
        rec = {"peer": peer, "scenario": scenario, "config": config, "rep": rep,
               "loadavg": round(os.getloadavg()[0], 2), **data}
        self.records.append(rec)
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in data.items()
                 if k != "error"}
        log(f"{peer:9s} {scenario} {config:14s} rep{rep}", json.dumps(shown),
            ("ERROR " + data["error"][-800:]) if "error" in data else "")

    def flush(self) -> None:
        self.r.flushall()

    # -- scenarios --------------------------------------------------------------------------

    def scenario_a(self, peer: str, rep: int) -> None:
        for mode, api in self.spec(peer)["A"]:
            self.flush()
            config = f"{mode}_{api}"
            try:
                res = self.driver(peer, ["enqueue", "--n", str(self.a.n), "--mode", mode,
                                         "--api", api])
                self.record(peer, "A", config, rep, **res)
            except Exception as exc:  # one failure must not end the run
                self.record(peer, "A", config, rep, error=str(exc))

    def scenario_b(self, peer: str, rep: int) -> None:
        for kind, cfg in self.spec(peer)["B"].items():
            n = self.a.n if kind != "io" else max(1, self.a.n // 4)
            self.drain(peer, "B", kind, cfg, min(n, cfg.get("n", n)), rep)

    def scenario_d(self, peer: str, rep: int) -> None:
        for kind, cfg in self.spec(peer)["D"].items():
            self.drain(peer, "D", kind, cfg, min(self.a.n, cfg.get("n", self.a.n)), rep)

    def drain(self, peer: str, scenario: str, kind: str, cfg: dict[str, Any], n: int,
              rep: int) -> None:
        self.flush()
        try:
            self.driver(peer, ["fill", "--n", str(n), "--task", kind], env=cfg.get("env"))
        except Exception as exc:
            self.record(peer, scenario, kind, rep, error="fill: " + str(exc))
            return
        queued_at = time.time()
        procs = self.start(peer, cfg, f"{scenario}-{kind}-r{rep}")
        pgids = {p.pid for p in procs}
        cpu_first: tuple[int, float, float] | None = None
        redis_pid = int(self.r.info("server")["process_id"])
        error = None
        deadline = time.monotonic() + self.a.timeout
        try:
            while True:
                done = int(self.r.get(_tally.DONE_KEY) or 0)
                if cpu_first is None and done > 0:
                    cpu_first = (done, group_cpu(pgids), _proc_cpu(redis_pid))
                if done >= n:
                    break
                if time.monotonic() > deadline:
                    error = f"timeout: {done}/{n} done after {self.a.timeout}s"
                    break
                if all(p.poll() is not None for p in procs):
                    error = f"workers exited with {done}/{n} done"
                    break
                time.sleep(0.02)
            cpu_end = (done, group_cpu(pgids), _proc_cpu(redis_pid))
            finished_at = time.time()
        finally:
            self.stop(procs)
        first, last, counted = self.tally()
        if error or first is None or last is None:
            self.record(peer, scenario, kind, rep, n=n, counted=counted,
                        error=error or "no completions")
            return
        span = max(last - first, 1e-9)
        data: dict[str, Any] = {
            "n": n, "counted": counted, "rate": (counted - 1) / span,
            "wall_rate": counted / (finished_at - queued_at), "conc": cfg.get("conc"),
            "procs": len(cfg["cmds"]), "note": cfg.get("note", ""),
        }
        if cpu_first is not None and cpu_end[0] > cpu_first[0]:
            jobs = cpu_end[0] - cpu_first[0]
            data["worker_cpu_us_per_job"] = (cpu_end[1] - cpu_first[1]) / jobs * 1e6
            data["redis_cpu_us_per_job"] = (cpu_end[2] - cpu_first[2]) / jobs * 1e6
        self.record(peer, scenario, kind, rep, **data)

    def tally(self) -> tuple[float | None, float | None, int]:
        first = last = None
        count = 0
        for key in self.r.keys(_tally.PROC_PREFIX + "*"):
            h = {k.decode(): v.decode() for k, v in self.r.hgetall(key).items()}
            f, la = float(h["first"]), float(h["last"])
            first = f if first is None else min(first, f)
            last = la if last is None else max(last, la)
            count += int(h["n"])
        return first, last, count

    def scenario_c(self, peer: str, rep: int) -> None:
        c = self.spec(peer)["C"]
        env = c.get("env", {})
        for api in c["apis"]:
            self.flush()
            procs = self.start(peer, c["worker"], f"C-{api}-r{rep}", extra_env=env)
            try:
                res = self.driver(peer, ["latency", "--n", str(self.a.c_n), "--api", api],
                                  env=env)
                self.record(peer, "C", api, rep, **res, note=c.get("note", ""))
            except Exception as exc:
                self.record(peer, "C", api, rep, error=str(exc))
            finally:
                self.stop(procs)

    def scenario_e(self, rep: int) -> None:
        self.flush()
        cmd = [sys.executable, "-m", "benchmarks.ceiling", "--url", self.url,
               "--n", str(self.a.n)]
        done = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=self.a.timeout)
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                for config, value in json.loads(line[7:]).items():
                    self.record("redis", "E", config, rep, rate=value)
                return
        self.record("redis", "E", "all", rep, error=done.stderr[-2000:])

    def run(self) -> None:
        peers = self.a.peers
        for rep in range(self.a.reps):
            # Rotate the peer order each repetition so no peer always runs first or last.
            order = peers[rep % len(peers):] + peers[:rep % len(peers)]
            for scenario in self.a.scenarios:
                if scenario == "E":
                    self.scenario_e(rep)
                    continue
                for peer in order:
                    try:
                        getattr(self, f"scenario_{scenario.lower()}")(peer, rep)
                    except Exception as exc:  # e.g. a driver that will not start
                        self.record(peer, scenario, "all", rep, error=str(exc))


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:13]) / CLK


def machine(url: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = redis.Redis.from_url(url).info("server")
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "redis": info.get("redis_version"),
            "uvloop": _has("uvloop"), "fennel_revision": _revision()}


def _revision() -> str | None:
    """The checkout's commit (``-dirty`` when it has uncommitted changes)."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--peers", default=",".join(PEERS),
                   help="comma-separated, from: " + ",".join(PEERS))
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated A..E")
    p.add_argument("--n", type=int, default=20000, help="jobs per A/B/D run (B I/O: n/4)")
    p.add_argument("--c-n", type=int, default=1000, help="round trips per C run")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true",
                   help="a fast sanity run: n=2000, 200 round trips, one repetition")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per step")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    a.peers = [x.strip() for x in a.peers.split(",") if x.strip()]
    a.scenarios = [x.strip().upper() for x in a.scenarios.split(",") if x.strip()]
    bad = [x for x in a.peers if x not in PEERS] + [x for x in a.scenarios if x not in SCENARIOS]
    if bad:
        p.error(f"unknown peer or scenario: {', '.join(bad)}")
    if a.quick:
        a.n, a.c_n, a.reps = min(a.n, 2000), min(a.c_n, 200), 1
    return a


def main(argv: list[str] | None = None) -> int:
    from fennel.testing import RedisServer

    a = parse(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    started = time.time()
    log("preparing peer environments:", ", ".join(a.peers))
    versions = envs.ensure_all(a.peers, log=log)
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    # A private server: no persistence, loopback, a free port (never 6379).
    with RedisServer(extra_args=["--appendfsync", "no"]) as server:
        log("redis at", server.url)
        bench = Bench(a, server.url, server.port)
        info = machine(server.url)
        try:
            bench.run()
        finally:
            results = {
                "command": command.strip(), "started": started, "finished": time.time(),
                "n": a.n, "c_n": a.c_n, "reps": a.reps, "machine": info,
                "versions": versions,
                "notes": {p: {s: _notes(bench.specs.get(p, {}), s) for s in "BCD"}
                          for p in a.peers},
                "runs": bench.records,
            }
            results["summary"] = report.summarise(bench.records)
            out = Path(a.out)
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
            print(report.table(results))
            if not a.no_plot:
                try:
                    report.plot(results, out / "results.png")
                except ImportError:
                    log("matplotlib not installed: no plot")
    errors = [r for r in bench.records if "error" in r]
    log(f"done in {time.time() - started:.0f}s, {len(errors)} failed step(s)")
    return 1 if errors else 0


def _notes(spec: dict[str, Any], scenario: str) -> Any:
    part = spec.get(scenario)
    if not part:
        return None
    if scenario == "C":
        return part.get("note")
    return {k: {"conc": v.get("conc"), "procs": len(v["cmds"]), "note": v.get("note", "")}
            for k, v in part.items()}
