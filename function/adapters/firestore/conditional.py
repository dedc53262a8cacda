"""Conditional writes: a plain read, then writes that land only while what was read is unchanged.

This replaces read-write transactions. Firestore's server client libraries take pessimistic
locks on what a transaction reads, so a process killed inside one leaves those documents
locked until Firestore expires the transaction (measured on the emulator: 60 s, every write
meanwhile aborted with "Transaction lock timeout"), whatever RELAYER_LEASE_SECONDS says. A
write with a precondition on the version read (`update_time`, or "does not exist") holds no
lock: it is applied only if the document is still as read, and otherwise fails with
FailedPrecondition (AlreadyExists for a create), when the caller reads again and decides
again. Google documents the locks and their expiry in the Firestore pages "Data contention
in transactions" and "Quotas and limits". A batch of such writes is atomic, so several
documents (block records and the lease they are fenced by) are conditioned on one read as a
transaction would be.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud import firestore

from function.adapters.firestore.wire import update_write
from function.errors import StateError

ATTEMPTS = 12  # a conditional write outlasts bursts of contention (starting runs, counters)
TIMEOUT_S = 30.0

# The errors a call is tried again on, within TIMEOUT_S in all. The library's own defaults
# keep retrying a write for 60 s and a read or query for 300 s, so with Firestore
# unreachable (a wrong FIRESTORE_EMULATOR_HOST, a network policy, an outage) a run waited
# minutes on each call before it failed, and the scheduler's next runs queued behind it.
# Each retries what the library retries for its RPC: reads (BatchGetDocuments, RunQuery,
# RunAggregationQuery) unavailable, deadline exceeded and internal errors; commits only
# unavailable and resource exhausted, since a commit whose deadline passed may have been
# applied (a conditional write sent again then fails its condition and is read and decided
# again, `conflicted`).
READ_ERRORS = (gexc.DeadlineExceeded, gexc.InternalServerError, gexc.ServiceUnavailable)
_BACKOFF = (0.1, 5.0, 1.3)  # first wait, longest wait, growth


def _bounded(*retried: type[Exception]) -> retries.Retry:
    first, longest, growth = _BACKOFF
    return retries.Retry(
        predicate=retries.if_exception_type(*retried),
        initial=first,
        maximum=longest,
        multiplier=growth,
        timeout=TIMEOUT_S,
    )


READS = _bounded(*READ_ERRORS)
WRITES = _bounded(gexc.ResourceExhausted, gexc.ServiceUnavailable)
# For a stream: the library then neither retries the query nor sends it again from its last
# document after an error mid-stream (`Query._make_stream`), which would start a fresh
# timeout and retry each time (a Firestore that answers a document and then stalls kept a
# run waiting forever) and builds a cursor a projection cannot hold (`select` of the ids).
_ONCE = retries.Retry(predicate=lambda _: False, timeout=TIMEOUT_S)


def documents(query: Any, timeout_s: float | None = None, once: bool = False) -> list[Any]:
    """Every snapshot `query` streams, read whole, again from the start after an error of
    READ_ERRORS while `timeout_s` lasts (the stream's deadline is what is left of it);
    `once`: one attempt (status answers, unhealthy, while Firestore is down). Raises the
    last error (a GoogleAPIError) when the time is up; `timeout_s` None: TIMEOUT_S."""
    deadline = time.monotonic() + (TIMEOUT_S if timeout_s is None else timeout_s)
    wait, longest, growth = _BACKOFF
    while True:
        left = deadline - time.monotonic()
        try:
            return list(query.stream(retry=_ONCE, timeout=max(left, 0.001)))
        except READ_ERRORS:
            if once or time.monotonic() + wait >= deadline:
                raise
        time.sleep(wait)
        wait = min(wait * growth, longest)


def wrapped(action: str, e: Exception) -> StateError:
    return StateError(f"Firestore {action} failed: {type(e).__name__}: {e}")


@dataclass(frozen=True)
class Version:
    """A document as a plain read found it: its fields (None: absent) and version."""

    ref: firestore.DocumentReference
    fields: dict[str, Any] | None
    update_time: datetime | None

    @property
    def doc(self) -> dict[str, Any]:
        return self.fields or {}


class Known:
    """The version of a document as this process's own last write left it, so the next
    conditional write can skip its read: the condition on that version still guarantees
    the document is as believed (else the write fails and is read and decided again).
    Shared by the relayer's state and its block records (both condition on the lease)."""

    def __init__(self) -> None:
        self.version: Version | None = None

    def take(self) -> Version | None:
        """The version, once: a write that fails must read before it tries again."""
        version, self.version = self.version, None
        return version

    def after(self, read: Version, fields: dict[str, Any], results: Any) -> None:
        """`fields` (top-level, each replaced whole) were written over `read`; `results`:
        the commit's write results, the document's write last."""
        written = list(results or [])
        update_time = getattr(written[-1], "update_time", None) if written else None
        if update_time is None:
            self.version = None
            return
        self.version = Version(read.ref, {**read.doc, **fields}, update_time)


def read(ref: firestore.DocumentReference, what: str) -> Version:
    """The document and the version the next write is conditioned on."""
    try:
        snapshot = ref.get(retry=READS, timeout=TIMEOUT_S)
    except gexc.GoogleAPIError as e:
        raise wrapped(f"read of {what}", e) from e
    if not snapshot.exists:
        return Version(ref, None, None)
    return Version(ref, snapshot.to_dict() or {}, snapshot.update_time)


def put(client: firestore.Client, batch: Any, read: Version, fields: dict[str, Any]) -> None:
    """Write top-level `fields` (each replaced whole) into the document, only if it is as
    `read` found it: updated at the same instant, or still absent."""
    if read.update_time is None:
        batch.create(read.ref, fields)
        return
    fast = update_write(read.ref._document_path, fields, read.update_time)
    if fast is not None:
        batch._add_write_pbs([fast])  # what `batch.update` adds, encoded by `wire`
        return
    option = client.write_option(last_update_time=read.update_time)
    batch.update(read.ref, fields, option=option)


def unchanged(client: firestore.Client, batch: Any, read: Version, path: str, value: Any) -> None:
    """Only a condition: the batch lands only if the document is as `read` found it. It is
    a write of a value the document already holds at `path`, which Firestore applies
    without changing the document or its update_time (checked on the emulator)."""
    assert read.update_time is not None, "a condition on a document that exists"
    option = client.write_option(last_update_time=read.update_time)
    batch.update(read.ref, {path: value}, option=option)


def exhausted(action: str, ref: firestore.DocumentReference) -> StateError:
    """A write that found its documents changed under each of its ATTEMPTS."""
    return StateError(
        f"Firestore {action} failed: {ref.path} changed under each of {ATTEMPTS} attempts"
    )


def conflicted(e: Exception) -> bool:
    """Not applied, because the documents changed since they were read (FailedPrecondition;
    AlreadyExists for a create) or another client's transaction locks them (Aborted): read
    again and decide again."""
    return isinstance(e, gexc.FailedPrecondition | gexc.Conflict)
