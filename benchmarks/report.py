"""Medians, the printed table, the target check and the plot, from the recorded runs."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

METRICS = ("rate", "p50_ms", "p99_ms", "worker_cpu_us_per_job", "redis_cpu_us_per_job")


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{peer: {"B:async": {"rate": median, "rate_min": .., "rate_max": .., "runs": k}}}``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["peer"], f"{r['scenario']}:{r['config']}"), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (peer, key), runs in groups.items():
        ok = [r for r in runs if "error" not in r]
        cell: dict[str, Any] = {"runs": len(ok), "failed": len(runs) - len(ok)}
        for m in METRICS:
            values = [r[m] for r in ok if isinstance(r.get(m), (int, float))]
            if values:
                cell[m] = statistics.median(values)
                cell[m + "_min"], cell[m + "_max"] = min(values), max(values)
        out.setdefault(peer, {})[key] = cell
    return out


def value(summary: dict[str, Any], peer: str, key: str, metric: str = "rate") -> float | None:
    v = summary.get(peer, {}).get(key, {}).get(metric)
    return float(v) if v is not None else None


def best(summary: dict[str, Any], peer: str, keys: list[str], metric: str = "rate",
         lowest: bool = False) -> tuple[float | None, str | None]:
    found = [(v, k) for k in keys if (v := value(summary, peer, k, metric)) is not None]
    if not found:
        return None, None
    return (min if lowest else max)(found)


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


COLUMNS = [
    ("A single sync", ["A:single_sync"]),
    ("A single async", ["A:single_async"]),
    ("A bulk", ["A:bulk_sync", "A:bulk_async"]),
    ("B async", ["B:async"]),
    ("B sync", ["B:sync"]),
    ("B I/O 10 ms", ["B:io"]),
    ("D 2 procs", ["D:async", "D:sync"]),
]
#: Worker CPU per job in B (user+system of the worker's processes over the steady state):
#: steadier than rates on a noisy machine, and what bounds a worker on a busy host.
CPU_COLUMNS = [("B async CPU us/job", "B:async"), ("B sync CPU us/job", "B:sync")]


def rows(results: dict[str, Any]) -> list[list[str]]:
    s = results["summary"]
    peers = [p for p in s if p != "redis"]
    out = []
    for peer in peers:
        row = [_label(results, peer)]
        for _title, keys in COLUMNS:
            v, _k = best(s, peer, keys)
            row.append(_num(v))
        c_keys = [k for k in s[peer] if k.startswith("C:")]
        p50, k50 = best(s, peer, c_keys, "p50_ms", lowest=True)
        p99 = value(s, peer, k50, "p99_ms") if k50 else None
        row.append("n/a" if p50 is None else f"{p50:.2f} / {p99:.2f}"
                   + (f" ({k50[2:]})" if len(c_keys) > 1 else ""))
        for _title, key in CPU_COLUMNS:
            row.append(_num(value(s, peer, key, "worker_cpu_us_per_job")))
        b, _ = best(s, peer, ["B:async", "B:sync"])
        d, _ = best(s, peer, ["D:async", "D:sync"])
        row.append("n/a" if not (b and d) else f"{d / b:.2f}x")
        out.append(row)
    return out


def _label(results: dict[str, Any], peer: str) -> str:
    versions = results.get("versions", {}).get(peer, {})
    dist = "fennel-queue" if peer == "fennel" else peer
    v = versions.get(dist)
    return f"{peer} {v}" if v else peer


def table(results: dict[str, Any]) -> str:
    head = ["peer", *[t for t, _ in COLUMNS], "C p50 / p99 ms",
            *[t for t, _ in CPU_COLUMNS], "D / B"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    e = results["summary"].get("redis", {})
    if e:
        lines.append("")
        xadd = _num(value(results["summary"], "redis", "E:xadd_pipelined"))
        lines.append("Raw ceiling (E, redis-py + hiredis, one process): "
                     f"pipelined XADD {xadd}"
                     f"/s, one XADD per round trip "
                     f"{_num(value(results['summary'], 'redis', 'E:xadd_single'))}/s, "
                     "XREADGROUP COUNT 100 + XACK "
                     f"{_num(value(results['summary'], 'redis', 'E:xreadgroup_xack'))}/s")
    lines.append("")
    lines.append(f"N = {results['n']:,} (B I/O: {results['n'] // 4:,}), C: {results['c_n']:,} "
                 f"round trips, medians of {results['reps']} run(s); rates in jobs/s.")
    lines += ["", *ratios(results), "", *targets(results)]
    return "\n".join(lines)


#: Fennel figure -> (its keys, the raw-ceiling figure it is compared with).
RATIOS = [
    ("A single sync", ["A:single_sync"], "E:xadd_single"),
    ("A single async", ["A:single_async"], "E:xadd_single"),
    ("A bulk", ["A:bulk_sync", "A:bulk_async"], "E:xadd_pipelined"),
    ("B async", ["B:async"], "E:xreadgroup_xack"),
    ("B sync", ["B:sync"], "E:xreadgroup_xack"),
    ("D 2 procs", ["D:async", "D:sync"], "E:xreadgroup_xack"),
]


def ratios(results: dict[str, Any]) -> list[str]:
    """Fennel against the fastest other peer and against the raw ceiling (E)."""
    s = results["summary"]
    if "fennel" not in s:
        return []
    others = [p for p in s if p not in ("fennel", "redis")]
    out = ["| Fennel | jobs/s | fastest other peer | Fennel / fastest | ceiling (E) | "
           "Fennel / ceiling |", "|---|---|---|---|---|---|"]
    for title, keys, ceiling in RATIOS:
        f, _ = best(s, "fennel", keys)
        # Single enqueues are compared with every peer's single enqueue, sync or async.
        peer_keys = ["A:single_sync", "A:single_async"] if title.startswith("A single") else keys
        pool = [(v, p) for p in others if (v := best(s, p, peer_keys)[0]) is not None]
        top = max(pool) if pool else (None, None)
        e = value(s, "redis", ceiling)
        out.append(f"| {title} | {_num(f)} | {top[1] or '-'} {_num(top[0])} | "
                   + (f"{f / top[0]:.2f}x" if f and top[0] else "n/a") + f" | {ceiling[2:]} "
                   f"{_num(e)} | " + (f"{f / e:.0%}" if f and e else "n/a") + " |")
    return out


def targets(results: dict[str, Any]) -> list[str]:
    """The issue's targets, checked against this run (Fennel vs the fastest other peer)."""
    s = results["summary"]
    if "fennel" not in s:
        return []
    others = [p for p in s if p not in ("fennel", "redis")]
    out = ["Targets:"]

    def fastest(keys: list[str], metric: str = "rate",
                lowest: bool = False) -> tuple[float | None, str | None]:
        found = [(v, p) for p in others if (v := best(s, p, keys, metric, lowest)[0]) is not None]
        if not found:
            return None, None
        return (min if lowest else max)(found)

    def line(name: str, ok: bool | None, text: str) -> None:
        mark = "n/a " if ok is None else ("MET " if ok else "MISS")
        out.append(f"  [{mark}] {name}: {text}")

    for kind in ("async", "sync"):
        f = value(s, "fennel", f"B:{kind}")
        top, who = fastest([f"B:{kind}"])
        line(f"B {kind} >= 2x fastest peer", None if f is None or top is None else f >= 2 * top,
             f"fennel {_num(f)} vs {who} {_num(top)} = "
             + (f"{f / top:.2f}x" if f and top else "n/a"))
    bulk, _ = best(s, "fennel", ["A:bulk_sync", "A:bulk_async"])
    xadd = value(s, "redis", "E:xadd_pipelined")
    line("A bulk >= 50% of pipelined XADD", None if bulk is None or xadd is None
         else bulk >= 0.5 * xadd,
         f"fennel {_num(bulk)} vs XADD {_num(xadd)} = "
         + (f"{bulk / xadd:.0%}" if bulk and xadd else "n/a"))
    for api in ("sync", "async"):
        f = value(s, "fennel", f"A:single_{api}")
        top, who = fastest(["A:single_sync", "A:single_async"])
        line(f"A single delay() ({api}) ahead of every peer",
             None if f is None or top is None else f > top,
             f"fennel {_num(f)} vs {who} {_num(top)}"
             + (f" = {f / top:.2f}x" if f and top else ""))
    c_keys = [k for k in s.get("fennel", {}) if k.startswith("C:")]
    p50, k50 = best(s, "fennel", c_keys, "p50_ms", lowest=True)
    p99 = value(s, "fennel", k50, "p99_ms") if k50 else None
    peer_c = [(best(s, p, [k for k in s[p] if k.startswith("C:")], "p50_ms", True)[0], p)
              for p in others]
    peer_c = [(v, p) for v, p in peer_c if v is not None]
    top_c = min(peer_c) if peer_c else (None, None)
    ok_c = None if p50 is None or p99 is None else (
        p50 <= 1.0 and p99 <= 5.0 and (top_c[0] is None or p50 < top_c[0]))
    line("C p50 <= 1 ms, p99 <= 5 ms, lowest", ok_c,
         f"fennel {_num(p50, 2)} / {_num(p99, 2)} ms ({k50[2:] if k50 else '-'}); "
         f"best peer p50 {top_c[1]} {_num(top_c[0], 2)} ms")
    b, _ = best(s, "fennel", ["B:async"])
    d, _ = best(s, "fennel", ["D:async"])
    line("D >= 1.7x B", None if not (b and d) else d >= 1.7 * b,
         f"fennel D {_num(d)} / B {_num(b)} = " + (f"{d / b:.2f}x" if b and d else "n/a"))
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    peers = [p for p in s if p != "redis"]
    panels = [(t, k) for t, k in COLUMNS] + [("C p50 ms (lower is better)", None)]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        if keys is None:
            vals = [best(s, p, [k for k in s[p] if k.startswith("C:")], "p50_ms", True)[0]
                    for p in peers]
        else:
            vals = [best(s, p, keys)[0] for p in peers]
        shown = [(p, v) for p, v in zip(peers, vals, strict=True) if v is not None]
        colors = ["tab:green" if p == "fennel" else "tab:gray" for p, _ in shown]
        ax.barh([p for p, _ in shown], [v for _, v in shown], color=colors)
        ax.set_title(title + ("" if keys is None else " (jobs/s)"), fontsize=10)
        ax.invert_yaxis()
        for i, (_p, v) in enumerate(shown):
            ax.text(v, i, f" {v:,.2f}" if keys is None else f" {v:,.0f}", va="center",
                    fontsize=8)
        if keys == ["A:bulk_sync", "A:bulk_async"]:
            xadd = value(s, "redis", "E:xadd_pipelined")
            if xadd:
                ax.axvline(xadd, color="tab:red", linestyle="--", linewidth=1)
                ax.text(xadd, len(shown) - 0.5, " pipelined XADD", color="tab:red",
                        fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    m = results.get("machine", {})
    fig.suptitle(f"Python Redis task queues, N={results['n']:,}, medians of {results['reps']} "
                 f"| {m.get('nproc')} cores {m.get('cpu')}, Python {m.get('python')}, "
                 f"Redis {m.get('redis')}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """``python -m benchmarks.report [results.json]``: print the table, redraw the plot."""
    import json
    import sys

    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results"
                / "results.json")
    results = json.loads(path.read_text())
    results["summary"] = summarise(results["runs"])
    print(table(results))
    plot(results, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
