"""The benchmark harness at tiny N, so it never rots: Fennel's scenarios and the raw ceiling.

No timing is asserted; only that every step completes, every job is counted, and the JSON
the docs are built from is well formed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import run


@pytest.mark.timeout(120)
def test_fennel_scenarios_and_ceiling_complete(tmp_path: Path) -> None:
    code = run.main(["--peers", "fennel", "--scenarios", "A,B,C,D,E", "--n", "200",
                     "--c-n", "20", "--reps", "1", "--out", str(tmp_path), "--no-plot"])
    results = json.loads((tmp_path / "results.json").read_text())
    errors = [r for r in results["runs"] if "error" in r]
    assert code == 0 and not errors, errors

    by_key = {(r["scenario"], r["config"]): r for r in results["runs"]}
    for mode in ("single_sync", "single_async", "bulk_sync", "bulk_async"):
        a = by_key["A", mode]
        assert a["n"] == 200 and a["rate"] > 0
    for key, n in ((("B", "async"), 200), (("B", "sync"), 200), (("B", "io"), 50),
                   (("D", "async"), 200)):
        assert by_key[key]["n"] == n
        assert by_key[key]["counted"] == n, by_key[key]  # every job counted, none twice
        assert by_key[key]["rate"] > 0
    for api in ("async", "sync"):
        c = by_key["C", api]
        assert c["n"] == 20 and 0 < c["p50_ms"] <= c["p99_ms"]
    for config in ("xadd_pipelined", "xadd_single", "xreadgroup_xack"):
        assert by_key["E", config]["rate"] > 0
    summary = results["summary"]
    assert summary["fennel"]["B:async"]["runs"] == 1
    assert results["machine"]["nproc"] >= 1 and results["machine"]["redis"]
    assert "Targets:" in run.report.table(results)
