"""Masking of secrets in Redis URLs, used by every log line and error that names a URL, and
the check that a Redis URL can be used at all."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# The userinfo of a URL ends at its *last* '@': a password may hold '@', ':', '/', '#' or
# '?' (percent-encoded or not), so nothing but that '@' can mark its end. A whole URL runs to
# the end of the string; a URL inside a message runs to the next whitespace.
_WHOLE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>.*)@", re.I | re.S)
_INSIDE = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>\S*)@", re.I)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&\s]*", re.IGNORECASE)


def _userinfo(m: re.Match[str]) -> str:
    user, colon, _password = m.group("userinfo").partition(":")
    if not colon:
        # "redis://secret@host": a lone userinfo is the password in redis-py.
        return f"{m.group('scheme')}***@"
    return f"{m.group('scheme')}{user}:***@"


def mask_url(url: str) -> str:
    """Return ``url`` (or a message containing URLs) with every password replaced by ``***``.

    >>> mask_url("redis://user:s3cret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> mask_url("redis://:s3c@r/et#x@host")
    'redis://:***@host'
    """
    whole = _WHOLE.match(url)
    # A password may hold spaces too: a string that starts with a URL and has none after its
    # last '@' is that one URL. Otherwise it is a message, whose URLs end at whitespace.
    if whole and not any(c.isspace() for c in url[whole.end():]):
        masked = _WHOLE.sub(_userinfo, url, count=1)
    else:
        masked = _INSIDE.sub(_userinfo, url)
    return _QUERY_PASSWORD.sub(r"\g<key>***", masked)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used as a Redis URL, or ``None`` if it can. Mirrors what the
    Redis client accepts, so a bad URL fails when the app is made, not at its first call."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return "a URL starting with redis://, rediss:// or unix://"
    encode = ("; percent-encode '@', ':', '/', '#' and '?' in a username or password "
              "(e.g. '#' as %23)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "a URL whose port is a number" + encode
    if parts.fragment:
        return "a URL without a '#' fragment" + encode
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL with the socket's path"
    if not parts.hostname:
        return "a URL with a host name" + encode
    if port is not None and not 0 < port < 65536:
        return "a URL whose port is between 1 and 65535"
    if not re.fullmatch(r"/?\d*", parts.path):
        return "a URL whose path is a database number, like /0" + encode
    return None
