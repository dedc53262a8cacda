"""Keep RPC credentials out of every log line, error and status answer.

Providers put API keys in the URL path or query (and sometimes in user-info), so an
endpoint is only ever shown by its host. Only RPC-style URLs (http, https, ws, wss) are
cut: a `gs://bucket/object` or a file path carries no secret, and an operator needs it whole
to fix a setting.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"(?:https?|wss?)://[^\s'\"<>),]+", re.IGNORECASE)


def host_of(url: str) -> str:
    """The part of an endpoint URL that is safe to show: its host (and port)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    return f"{host}:{port}" if port else host


def scrub(text: str) -> str:
    """Replace every http(s)/ws(s) URL in a message by its host, so a library error cannot
    leak a key; other URIs (gs://, file://) and paths stay whole."""
    return _URL.sub(lambda m: host_of(m.group(0)), text)
