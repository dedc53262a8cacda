"""Every Firestore call of the relayer bounds its retries (`conditional.READS`, `WRITES`).

The library's own retries allow 60 s per write and 300 s per read or query, retried with
backoff for as long: with Firestore unreachable (a wrong FIRESTORE_EMULATOR_HOST, a network
policy, an outage), a run waited minutes on every call before it failed, and Cloud
Scheduler's next runs piled up behind it. Each call site names its retry; a call that only
gives a `timeout` falls back to the library's and is caught here.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc

from function.adapters.firestore import conditional

ROOT = Path(__file__).resolve().parents[2]
# Where the relayer talks to Firestore: the adapter, and the CLI's own writes.
SOURCES = [
    *sorted((ROOT / "function" / "adapters" / "firestore").glob("*.py")),
    ROOT / "function" / "ops" / "cli.py",
]
RPCS = {"get", "stream", "commit", "create", "set", "update", "delete", "get_all"}


def _method_calls(tree: ast.AST) -> Iterator[tuple[ast.Call, ast.Attribute, set[str]]]:
    """Every `x.method(...)` call under `tree`: the call, its `x.method`, its keywords."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node, node.func, {k.arg for k in node.keywords if k.arg}


def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _calls_with_timeout(path: Path) -> list[tuple[int, str, set[str]]]:
    """Calls of a Firestore method name that pass `timeout=`: (line, method, keywords)."""
    return [
        (call.lineno, method.attr, keywords)
        for call, method, keywords in _method_calls(_parsed(path))
        if method.attr in RPCS and "timeout" in keywords
    ]


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
    bare = [
        call.lineno
        for call, method, keywords in _method_calls(_parsed(ROOT / "function" / "ops" / "cli.py"))
        if isinstance(method.value, ast.Name)
        and method.value.id == "ref"
        and method.attr in {"create", "set"}
        and "timeout" not in keywords
    ]
    assert bare == []


def test_the_retries_end_within_the_call_timeout() -> None:
    for policy in (conditional.READS, conditional.WRITES):
        assert policy.timeout is not None and policy.timeout <= conditional.TIMEOUT_S


def test_reads_retry_what_the_library_retries_and_writes_only_what_it_retries_for_commits() -> None:
    """The library's predicates (google/cloud/firestore_v1 transports): reads as its
    BatchGetDocuments and RunQuery do, on DeadlineExceeded, InternalServerError and
    ServiceUnavailable; commits on ResourceExhausted and ServiceUnavailable only (a commit
    whose deadline passed may have been applied)."""

    def retried(policy: object, error: Exception) -> bool:
        return bool(policy._predicate(error))  # type: ignore[attr-defined]

    read_errors = [
        gexc.DeadlineExceeded("x"),
        gexc.InternalServerError("x"),
        gexc.ServiceUnavailable("x"),
    ]
    assert all(retried(conditional.READS, e) for e in read_errors)
    assert not retried(conditional.READS, gexc.ResourceExhausted("x"))
    assert retried(conditional.WRITES, gexc.ServiceUnavailable("x"))
    assert retried(conditional.WRITES, gexc.ResourceExhausted("x"))
    assert not retried(conditional.WRITES, gexc.DeadlineExceeded("x"))
    assert not retried(conditional.WRITES, gexc.InternalServerError("x"))
    for policy in (conditional.READS, conditional.WRITES):
        assert not retried(policy, gexc.FailedPrecondition("x"))
        assert not retried(policy, gexc.PermissionDenied("x"))


def test_every_query_is_read_through_documents() -> None:
    """A stream the library retries itself restarts after an error mid-stream from its
    last document, with a fresh timeout and retry each time (unbounded against a Firestore
    that answers one document and stalls), and from a cursor a projection cannot build.
    `conditional.documents` reads each query whole, within one deadline; it is the one
    place that calls `stream`."""
    direct = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in SOURCES
        for call, method, _ in _method_calls(_parsed(path))
        if method.attr == "stream"
    ]
    assert direct == ["function/adapters/firestore/conditional.py:" + str(_documents_line())]


def _documents_line() -> int:
    tree = _parsed(ROOT / "function/adapters/firestore/conditional.py")
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "documents")
    return next(call.lineno for call, method, _ in _method_calls(body) if method.attr == "stream")


class _Query:
    """A query whose streams fail as told: each entry of `plan` is one attempt, a list of
    documents then an error (or None: the stream ends well)."""

    def __init__(self, plan: list[tuple[list[str], Exception | None]]) -> None:
        self.plan = plan
        self.calls: list[tuple[object, float]] = []

    def stream(self, *, retry: object, timeout: float) -> object:
        self.calls.append((retry, timeout))
        docs, error = self.plan[min(len(self.calls), len(self.plan)) - 1]

        def run() -> object:
            yield from docs
            if error is not None:
                raise error

        return run()


def test_a_query_cut_mid_stream_is_read_again_whole() -> None:
    query = _Query([(["a", "b"], gexc.ServiceUnavailable("reset")), (["a", "b", "c"], None)])
    assert conditional.documents(query) == ["a", "b", "c"]
    assert len(query.calls) == 2
    for retry, timeout in query.calls:  # the library may not restart it on its own
        assert not retry._predicate(gexc.ServiceUnavailable("x"))  # type: ignore[attr-defined]
        assert 0 < timeout <= conditional.TIMEOUT_S


def test_a_query_error_that_is_not_retried_is_raised_at_once() -> None:
    query = _Query([([], gexc.PermissionDenied("no"))])
    with pytest.raises(gexc.PermissionDenied):
        conditional.documents(query)
    assert len(query.calls) == 1


def test_once_is_one_attempt() -> None:
    query = _Query([([], gexc.ServiceUnavailable("down")), (["a"], None)])
    with pytest.raises(gexc.ServiceUnavailable):
        conditional.documents(query, 3.0, once=True)
    assert len(query.calls) == 1


def test_the_attempts_share_one_deadline() -> None:
    """Every attempt fails: they stop when `timeout_s` is spent, each stream's own
    deadline what was left of it, and the last error is raised."""
    query = _Query([([], gexc.DeadlineExceeded("stalled"))])
    with pytest.raises(gexc.DeadlineExceeded):
        conditional.documents(query, 0.5)
    timeouts = [t for _, t in query.calls]
    assert len(timeouts) >= 2
    assert all(a > b for a, b in itertools.pairwise(timeouts))
    assert timeouts[0] <= 0.5
