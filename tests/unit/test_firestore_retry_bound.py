"""Every Firestore call of the relayer bounds its retries (`conditional.READS`, `WRITES`).

The library's own retries allow 60 s per write and 300 s per read or query, retried with
backoff for as long: with Firestore unreachable (a wrong FIRESTORE_EMULATOR_HOST, a network
policy, an outage), a run waited minutes on every call before it failed, and Cloud
Scheduler's next runs piled up behind it. Each call site names its retry; a call that only
gives a `timeout` falls back to the library's and is caught here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from google.api_core import exceptions as gexc

from function.adapters.firestore import conditional

ROOT = Path(__file__).resolve().parents[2]
# Where the relayer talks to Firestore: the adapter, and the CLI's own writes.
SOURCES = [
    *sorted((ROOT / "function" / "adapters" / "firestore").glob("*.py")),
    ROOT / "function" / "ops" / "cli.py",
]
RPCS = {"get", "stream", "commit", "create", "set", "update", "delete", "get_all"}


def _calls_with_timeout(path: Path) -> list[tuple[int, str, set[str]]]:
    """Calls of a Firestore method name that pass `timeout=` or that the CLI makes on a
    document reference: (line, method, keyword names)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        keywords = {k.arg for k in node.keywords if k.arg}
        if node.func.attr in RPCS and "timeout" in keywords:
            found.append((node.lineno, node.func.attr, keywords))
    return found


def test_every_firestore_call_with_a_timeout_names_its_retry() -> None:
    unbounded = [
        f"{path.relative_to(ROOT)}:{line} {method}()"
        for path in SOURCES
        for line, method, keywords in _calls_with_timeout(path)
        if "retry" not in keywords
    ]
    assert unbounded == []


def test_the_scan_finds_calls() -> None:
    """The check above is not vacuous: the adapter's reads and commits are seen."""
    methods = {m for path in SOURCES for _, m, _ in _calls_with_timeout(path)}
    assert {"get", "stream", "commit"} <= methods


def test_the_cli_writes_have_a_timeout_and_so_a_bounded_retry() -> None:
    """`cli.py`'s create and set of the relayer document: without a timeout they would not
    be seen by the scan above."""
    text = (ROOT / "function" / "ops" / "cli.py").read_text()
    tree = ast.parse(text)
    bare = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "ref"
        and n.func.attr in {"create", "set"}
        and "timeout" not in {k.arg for k in n.keywords}
    ]
    assert bare == []


def test_the_retries_end_within_the_call_timeout() -> None:
    for policy in (conditional.READS, conditional.WRITES):
        assert policy.timeout is not None and policy.timeout <= conditional.TIMEOUT_S


def test_reads_retry_what_the_library_retries_and_writes_only_what_it_retries_for_commits() -> None:
    """Same predicates as the library's defaults (google/cloud/firestore_v1 transports):
    reads on DeadlineExceeded, InternalServerError, ResourceExhausted, ServiceUnavailable;
    commits on ResourceExhausted and ServiceUnavailable only (a commit whose deadline passed
    may have been applied)."""

    def retried(policy: object, error: Exception) -> bool:
        return bool(policy._predicate(error))  # type: ignore[attr-defined]

    read_errors = [
        gexc.DeadlineExceeded("x"),
        gexc.InternalServerError("x"),
        gexc.ResourceExhausted("x"),
        gexc.ServiceUnavailable("x"),
    ]
    assert all(retried(conditional.READS, e) for e in read_errors)
    assert retried(conditional.WRITES, gexc.ServiceUnavailable("x"))
    assert retried(conditional.WRITES, gexc.ResourceExhausted("x"))
    assert not retried(conditional.WRITES, gexc.DeadlineExceeded("x"))
    assert not retried(conditional.WRITES, gexc.InternalServerError("x"))
    for policy in (conditional.READS, conditional.WRITES):
        assert not retried(policy, gexc.FailedPrecondition("x"))
        assert not retried(policy, gexc.PermissionDenied("x"))
