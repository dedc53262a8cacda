"""Cloud Logging queries, the subset the deployment writes, matched against log entries.

What a log-based metric counts, or a printed `gcloud logging read` finds, is what its filter
matches; this decides it for sample entries, so a test can say "the relay function's summary
line is counted" instead of looking for substrings. Supported: brackets, AND, OR, NOT,
`path="text"`, `path=true|false`, `path:*` (the field is present) and `severity>=LEVEL`.
AND and OR mixed at one level without brackets are refused: the deployment's filters must not
depend on how Logging ranks them.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<open>\()|(?P<close>\))|(?P<op>AND|OR|NOT)(?![\w.])
    | (?P<path>[A-Za-z_][\w.]*)\s*(?P<cmp>>=|=|:)\s*(?P<value>"(?:[^"\\]|\\.)*"|\*|[\w.-]+)
    )""",
    re.VERBOSE,
)
_SEVERITY = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT"]


class Unsupported(Exception):
    """The filter uses something this subset does not decide, or mixes AND and OR."""


def _tokens(text: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    at = 0
    while text[at:].strip():
        found = _TOKEN.match(text, at)
        if not found:
            raise Unsupported(f"cannot read {text[at:]!r}")
        at = found.end()
        if found["open"]:
            out.append(("(",))
        elif found["close"]:
            out.append((")",))
        elif found["op"]:
            out.append((found["op"],))
        else:
            out.append(("cmp", found["path"], found["cmp"], found["value"]))
    return out


def _field(entry: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _compare(entry: dict[str, Any], path: str, cmp: str, raw: str) -> bool:
    present, value = _field(entry, path)
    if cmp == ":":
        if raw != "*":
            raise Unsupported(f"{path}:{raw}")
        return present
    if cmp == ">=":
        if path != "severity":
            raise Unsupported(f"{path}>={raw}")
        return _SEVERITY.index(str(value)) >= _SEVERITY.index(raw)
    if raw.startswith('"'):
        return present and str(value) == raw[1:-1].replace('\\"', '"')
    if raw in ("true", "false"):
        return present and value is (raw == "true")
    raise Unsupported(f"{path}={raw}")


def matches(query: str, entry: dict[str, Any]) -> bool:
    """Whether Logging would return `entry` for `query`."""
    tokens = _tokens(query)
    at = 0

    def term() -> bool:
        nonlocal at
        token = tokens[at]
        at += 1
        if token[0] == "NOT":
            return not term()
        if token[0] == "(":
            value = expression()
            if at >= len(tokens) or tokens[at][0] != ")":
                raise Unsupported(f"unbalanced brackets in {query!r}")
            at += 1
            return value
        if token[0] == "cmp":
            return _compare(entry, *token[1:])
        raise Unsupported(f"unexpected {token[0]} in {query!r}")

    def expression() -> bool:
        nonlocal at
        values, joins = [term()], set()
        while at < len(tokens) and tokens[at][0] in ("AND", "OR"):
            joins.add(tokens[at][0])
            at += 1
            values.append(term())
        if len(joins) > 1:
            raise Unsupported(f"AND and OR mixed without brackets in {query!r}")
        return any(values) if joins == {"OR"} else all(values)

    result = expression()
    if at != len(tokens):
        raise Unsupported(f"unexpected {tokens[at][0]} in {query!r}")
    return result
