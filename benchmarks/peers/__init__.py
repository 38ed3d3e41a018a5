"""Per-peer drivers, each run with that peer's own venv python."""
