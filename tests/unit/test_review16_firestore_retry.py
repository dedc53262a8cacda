"""Review of the bounded Firestore retries (`conditional.READS`, `WRITES`, TIMEOUT_S).

The change says every Firestore call now fails within 30 s in all. These tests check that
claim against a fake Firestore served in-process over real gRPC, the real client library
talking to it, so no emulator is needed. They check only liveness bounds (generous
multiples of the call timeout), never speed.

What failed on 37def1b (all fixed in the next commits: `conditional.documents` reads each
query whole within one deadline, the library's own restart off; READS retries the
library's read errors only):
- A query (`Query.stream`) is not bounded by its retry. The library's `Query._make_stream`
  catches a retryable error raised in the middle of the stream (DeadlineExceeded is one of
  the errors READS retries) and sends the query again from the last document it got. The
  new query gets a fresh `timeout` and a fresh `Retry`. A Firestore that answers each query
  with one document and then stalls (a slow or half-broken backend, a stalled proxy)
  therefore keeps a run waiting 30 s per document, with no end.
- After a reset in the middle of the stream, the restart of the record ids query
  (`BlockStore.refs`, which selects only document ids) raises ValueError instead of riding
  the reset through. The ValueError is no GoogleAPIError, so it is not wrapped either.
- READS is documented as "what the library retries" for reads, but it also retries
  ResourceExhausted on BatchGetDocuments and RunQuery, which the library's defaults do not.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport
from google.cloud.firestore_v1.types import document
from google.cloud.firestore_v1.types import firestore as fs

from function.adapters.firestore import blockstore, conditional, state
from function.adapters.firestore.state import FirestoreState
from function.core.identity import Identity
from function.core.planning import BlockRange
from function.errors import StateError
from harness import outcome_within

SERVICE = "google.firestore.v1.Firestore"
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


class StallingFirestore:
    """A Firestore that says every document is missing (BatchGetDocuments). It answers
    each RunQuery with the next document of a long collection and then stalls until the
    caller gives up. A query restarted after its last document therefore always gets one
    more document, then stalls again."""

    def __init__(self, abort_once: bool = False) -> None:
        self.abort_once = abort_once  # instead of stalling: one UNAVAILABLE, then answers
        self.stop = threading.Event()
        self.queries = 0
        self._ids = itertools.count(1)
        handlers = {
            "BatchGetDocuments": grpc.unary_stream_rpc_method_handler(
                self._batch_get,
                request_deserializer=fs.BatchGetDocumentsRequest.deserialize,
                response_serializer=fs.BatchGetDocumentsResponse.serialize,
            ),
            "RunQuery": grpc.unary_stream_rpc_method_handler(
                self._run_query,
                request_deserializer=fs.RunQueryRequest.deserialize,
                response_serializer=fs.RunQueryResponse.serialize,
            ),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(32))
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, handlers)]
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _batch_get(self, request: Any, context: Any) -> Iterator[Any]:
        for name in request.documents:
            yield fs.BatchGetDocumentsResponse(
                missing=name, read_time={"seconds": int(time.time())}
            )

    def _run_query(self, request: Any, context: Any) -> Iterator[Any]:
        self.queries += 1
        collection = request.structured_query.from_[0].collection_id
        doc_id = f"{next(self._ids):012d}-0x{'ab' * 32}"
        # A projection (`select`) is honoured as Firestore does: only the fields asked.
        wanted = {f.field_path for f in request.structured_query.select.fields}
        fields = {"block_number": document.Value(integer_value=self.queries)}
        yield fs.RunQueryResponse(
            document=document.Document(
                name=f"{request.parent}/{collection}/{doc_id}",
                fields={k: v for k, v in fields.items() if not wanted or k in wanted},
                create_time={"seconds": 1},
                update_time={"seconds": 1},
            ),
            read_time={"seconds": int(time.time())},
        )
        if self.abort_once:
            if self.queries == 1:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset mid-stream")
            return
        while context.is_active() and not self.stop.is_set():
            time.sleep(0.05)


@pytest.fixture
def stalling(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[StallingFirestore, Any]]:
    fake = StallingFirestore(abort_once=getattr(request, "param", False))
    fake.server.start()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{fake.port}")
    client = firestore.Client(project="review16")
    try:
        yield fake, client
    finally:
        fake.stop.set()
        fake.server.stop(0)  # the call still running fails (unavailable) within its bound


def test_a_first_runs_lease_waits_on_a_stalling_query_past_any_bound(
    stalling: tuple[StallingFirestore, Any],
) -> None:
    """With the product's own READS and TIMEOUT_S (30 s), a first run's lease acquisition
    (no state yet: `_judge` queries the other relayers, `FirestoreState._relayers`) against
    a Firestore that answers each query with a document and then stalls is still waiting
    after 2 x TIMEOUT_S + 20 s, the bound the change's own test allows. The query was sent
    again every 30 s (`Query._make_stream` restarts it after DeadlineExceeded, a READS error,
    with a fresh timeout and retry). It should fail with a StateError within the bound."""
    fake, client = stalling
    me = Identity("r16", 1, (CONTRACT,), False, "projects/p/topics/t")
    store = FirestoreState(client, "r16", me.fields(), guard=me)
    bound = 2 * conditional.TIMEOUT_S + 20
    outcome = outcome_within(lambda: store.acquire("run-1", datetime.now(UTC), 60.0), bound)
    assert isinstance(outcome, StateError), (outcome, fake.queries)


def test_the_processed_event_set_read_is_not_bounded_by_its_retry(
    stalling: tuple[StallingFirestore, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read of the block records (`BlockStore.read`, one stream) against the same
    Firestore. To keep the test short, the call timeout and READS are cut to 2 s, the same
    policy with a smaller number. The read is still going after 5 x the bound plus 10 s,
    the query sent again each time its deadline passed. A bounded read would have failed
    with a StateError."""
    fake, client = stalling
    monkeypatch.setattr(conditional, "TIMEOUT_S", 2.0)  # what `documents` allows a query
    store = FirestoreState(client, "r16", {"chain_id": 1})
    outcome = outcome_within(lambda: store.records.read(0), 5 * 2.0 + 10)
    assert isinstance(outcome, StateError), (outcome, fake.queries)


@pytest.mark.parametrize("stalling", [True], indirect=True, ids=["one-reset"])
def test_a_reset_in_the_middle_of_the_record_ids_read_is_ridden_through(
    stalling: tuple[StallingFirestore, Any],
) -> None:
    """README: "An outage shorter than that [30 s] is ridden through". The read of the
    record ids done on every look (`BlockStore.refs`: an inequality on `block_number`,
    only document ids selected) gets one document, then one UNAVAILABLE (a READS error),
    and then the answers are normal again. The library sends the query again from a cursor
    on the last snapshot. That snapshot holds only the id, so building the cursor raises
    ValueError ("The order by field path 'block_number' is not present in the cursor
    data"). That is no GoogleAPIError: `_refs` lets it through, unwrapped, and the run
    fails with a library traceback. Expected: the ids read, or at worst a StateError."""
    fake, client = stalling
    store = FirestoreState(client, "r16", {"chain_id": 1})
    outcome = outcome_within(lambda: store.records.refs(BlockRange(0, 10**6)), 30)
    assert not isinstance(outcome, BaseException) or isinstance(outcome, StateError), (
        repr(outcome),
        fake.queries,
    )


def _library_read_retries() -> dict[str, Any]:
    transport = FirestoreGrpcTransport(
        host="localhost", channel=grpc.insecure_channel("localhost:1")
    )
    wrapped = transport._wrapped_methods
    return {
        "batch_get_documents": wrapped[transport.batch_get_documents]._retry,
        "run_query": wrapped[transport.run_query]._retry,
        "run_aggregation_query": wrapped[transport.run_aggregation_query]._retry,
    }


@pytest.mark.parametrize(
    "error",
    [
        gexc.DeadlineExceeded("x"),
        gexc.InternalServerError("x"),
        gexc.ServiceUnavailable("x"),
        gexc.ResourceExhausted("x"),
        gexc.Aborted("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_reads_retry_what_the_library_retries_for_the_rpcs_they_make(error: Exception) -> None:
    """README and the module comment: "each call retries what the client library
    retries". The reads with READS are document gets (BatchGetDocuments), `get_all`
    (BatchGetDocuments), queries (RunQuery) and the export's count (RunAggregationQuery).
    The library retries ResourceExhausted for none of these RPCs, READS does: a quota
    error is retried for 30 s instead of being reported at once."""
    ours = bool(conditional.READS._predicate(error))
    theirs = {name: bool(r._predicate(error)) for name, r in _library_read_retries().items()}
    assert all(ours == t for t in theirs.values()), (ours, theirs)


def test_the_state_module_uses_the_policies_under_review() -> None:
    """Guard for the tests above: the state module's reads use `conditional.READS`, and
    its and the block store's queries `conditional.documents` (after the fix:
    `test_firestore_retry_bound.test_every_query_is_read_through_documents`)."""
    assert state.READS is conditional.READS
    assert state.conditional is conditional and blockstore.conditional is conditional
