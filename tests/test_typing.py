"""mypy --strict checks tasks against their functions' signatures, sync and async."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

CASES = Path(__file__).resolve().parent / "typing_cases"


def run_mypy(path: Path) -> tuple[str, int]:
    stdout, stderr, code = mypy_api.run([
        "--strict", "--no-incremental", "--cache-dir=/dev/null", "--show-error-codes",
        "--no-error-summary", "--follow-imports=silent", str(path),
    ])
    return stdout + stderr, code


def error_lines(output: str, name: str) -> set[int]:
    return {int(m.group(1))
            for m in re.finditer(rf"{re.escape(name)}:(\d+): error:", output)}


def test_correct_use_has_no_errors():
    output, code = run_mypy(CASES / "cases.py")
    assert code == 0, output
    assert "error" not in output


def test_wrong_uses_are_reported():
    path = CASES / "wrong.py"
    output, code = run_mypy(path)
    assert code == 1, output
    expected = {i for i, line in enumerate(path.read_text().splitlines(), start=1)
                if "  # E:" in line}
    assert error_lines(output, "wrong.py") == expected, output
