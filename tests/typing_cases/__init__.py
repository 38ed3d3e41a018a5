"""Files checked by mypy in tests/test_typing.py (never imported by the test suite)."""
