"""Fennel's side-by-side benchmark against other Python Redis task queues.

Run ``nox -s bench`` or ``python -m benchmarks --help``; see ``benchmarks/README.md``.
Standard library only at import time: the peers' venvs import ``benchmarks.peers.*``.
"""
