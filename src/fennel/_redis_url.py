"""Masking of secrets in Redis URLs, used by every log line and error that names a URL."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<scheme>[a-z]+://)(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    >>> mask_url("redis://user:s3cret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> mask_url("redis://:s3cret@host")
    'redis://:***@host'
    """

    def _userinfo(m: re.Match[str]) -> str:
        if m.group("password") is None:
            # "redis://secret@host": a lone userinfo is the password in redis-py.
            return f"{m.group('scheme')}***@" if m.group("user") else m.group(0)
        return f"{m.group('scheme')}{m.group('user')}:***@"

    return _QUERY_PASSWORD.sub(r"\g<key>***", _USERINFO.sub(_userinfo, url, count=1))
