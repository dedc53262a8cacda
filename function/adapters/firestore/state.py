"""The relayer's state in Firestore (docs/CONTRACT.md §4): lease, checkpoint, processed-event set.

Transaction functions here only read, decide (with `guard`) and write: Firestore may run
them more than once, so nothing else happens inside them. Block records are written before
the checkpoint commit, in transactions that check the fence like it: a run that lost its
lease writes nothing, or its partial record of a block would replace the newer run's whole
one (docs/CONTRACT.md §7.6).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

import function.core.lease as leases
from function.adapters.firestore.blockstore import (
    COMMIT_ATTEMPTS,
    TIMEOUT_S,
    BlockStore,
    wrapped,
)
from function.adapters.firestore.leasedoc import lease_fields, lease_of
from function.core.checkpoint import Commit, Grant
from function.core.commit import Totals, advance, lease_after
from function.core.lease import Lease, check_fence
from function.core.model import BlockRef
from function.core.planning import BlockRange
from function.core.summary import IDLE, OK, SKIPPED, RunSummary
from function.errors import LeaseLostError, StateError

log = logging.getLogger(__name__)

BACKFILL_LEASE = "backfill-lease"  # the task document every backfill's lease lives in
RUN_HISTORY = 48  # runs kept in `recent_runs`, for the status page's chart


def _replay_range(raw: Any) -> BlockRange | None:
    if not isinstance(raw, dict):
        return None
    return BlockRange(int(raw["from"]), int(raw["to"]))


def _grant(run_id: str, lease: Lease, doc: dict[str, Any]) -> Grant:
    assert lease.expires_at is not None
    return Grant(
        run_id,
        lease.fence,
        lease.expires_at,
        doc.get("next_block"),
        doc.get("checkpoint_block_hash"),
        _refs(doc.get("recent_blocks")),
        {str(e["host"]): int(e["blocks"]) for e in doc.get("rpc_limits") or []},
        _replay_range(doc.get("replay")),
    )


def _refs(raw: Any) -> tuple[BlockRef, ...]:
    return tuple(BlockRef(int(r["number"]), str(r["hash"])) for r in raw or [])


def _totals(doc: dict[str, Any]) -> Totals:
    raw = doc.get("totals") or {}
    counters = {
        f.name: int(raw.get(f.name) or 0) for f in dataclass_fields(Totals) if f.name != "outcomes"
    }
    outcomes = {k: int(v) for k, v in (raw.get("outcomes") or {}).items()}
    return Totals(**counters, outcomes=outcomes)


def _totals_fields(totals: Totals) -> dict[str, Any]:
    return asdict(totals)


def _history_entry(summary: RunSummary, next_block: Any) -> dict[str, Any]:
    lag = None
    if summary.head_block is not None and next_block is not None:
        lag = max(0, summary.head_block - int(next_block) + 1)
    return {
        "run_id": summary.run_id,
        "outcome": summary.outcome,
        "started_at": summary.started_at,
        "duration_s": summary.duration_s,
        "from_block": summary.from_block,
        "to_block": summary.to_block,
        "events_published": summary.events_published,
        "lag_blocks": lag,
        "error": summary.error,
    }


def _finish_fields(
    doc: dict[str, Any], update: dict[str, Any], summary: RunSummary
) -> dict[str, Any]:
    """Store the summary and keep a short history of runs for the status page."""
    history = list(doc.get("recent_runs") or [])
    history.append(_history_entry(summary, update.get("next_block", doc.get("next_block"))))
    fields: dict[str, Any] = {
        "last_run": summary.as_dict(),
        "recent_runs": history[-RUN_HISTORY:],
    }
    if summary.outcome in (OK, IDLE):
        fields["last_success_at"] = summary.finished_at
    return fields


class FirestoreState:
    """One relayer's state document and its `blocks` subcollection."""

    def __init__(
        self,
        client: firestore.Client,
        relayer_id: str,
        identity: dict[str, Any],
        task: str | None = None,
    ) -> None:
        self._client = client
        relayer = client.collection("relayers").document(relayer_id)
        # A task (a backfill) has its own checkpoint beside the scheduled job's and shares
        # the processed-event set, so neither publishes what the other did. Every backfill
        # of the relayer takes one lease, whatever its range: two with separate leases
        # would read the same unrecorded blocks at once and both publish them.
        self._tasks = relayer.collection("tasks")
        self._doc = relayer.collection("tasks").document(task) if task else relayer
        self._lease_doc = relayer.collection("tasks").document(BACKFILL_LEASE) if task else relayer
        self._records = BlockStore(client, relayer.collection("blocks"), self._lease_doc)
        self._identity = identity  # chain_id and contracts, written with every commit

    def backfilled(self) -> dict[str, tuple[BlockRange, datetime | None]]:
        """What backfills relayed, by task: each range's start up to its checkpoint, and
        the time of its first commit (no record of it is older)."""
        try:
            snapshots = list(self._tasks.stream(timeout=TIMEOUT_S))
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the backfill checkpoints", e) from e
        done = {}
        for snapshot in snapshots:
            name, fields = snapshot.id, snapshot.to_dict() or {}
            parts = name.split("-")
            if len(parts) != 3 or parts[0] != "backfill" or fields.get("next_block") is None:
                continue  # the shared backfill lease, or a range that never committed
            start, end = int(parts[1]), min(int(parts[2]), int(fields["next_block"]) - 1)
            if start <= end:
                done[name] = (BlockRange(start, end), fields.get("first_commit_at"))
        return done

    def read(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The relayer document as it is; with `timeout_s`, one quick attempt (status must
        answer, unhealthy, while Firestore is down)."""
        try:
            if timeout_s is None:
                snapshot = self._doc.get(timeout=TIMEOUT_S)
            else:
                snapshot = self._doc.get(retry=None, timeout=timeout_s)
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the relayer document", e) from e
        return snapshot.to_dict() if snapshot.exists else None

    def read_lease(self) -> Lease:
        """The lease as it is (a plain read: a run waiting for a follower polls it)."""
        return lease_of(self._read_lease_doc())

    def acquire(
        self, run_id: str, now: datetime, lease_s: float, follow_until: datetime | None = None
    ) -> Grant | None:
        """Take the lease (a follower's: until `follow_until`), or None while another run
        holds it."""
        # A plain read first: runs that find the lease taken leave without a transaction,
        # whose lock would contend with the commits of the run that holds it.
        held = lease_of(self._read_lease_doc())
        if held.held_by_other(run_id, now):
            return None

        @firestore.transactional
        def take(txn: firestore.Transaction) -> Grant | None:
            held, doc = self._read_both(txn)
            lease = leases.acquire(held, run_id, now, lease_s, follow_until)
            if lease is None:
                return None
            fields: dict[str, Any] = {"updated_at": now, **self._identity}
            self._put_lease(txn, fields, lease, now)
            txn.set(self._doc, fields, merge=True)
            return _grant(run_id, lease, doc)

        try:
            grant: Grant | None = take(self._client.transaction())
            return grant
        except (ValueError, gexc.Aborted, gexc.Conflict) as e:
            # Aborted: another run took the lease first. ValueError ("Failed to commit
            # transaction in N attempts"): the transaction kept aborting, because runs are
            # taking the lease right now or because a run killed inside a transaction still
            # locks the document. Either way this run is skipped; say which it may be.
            log.warning(
                "the lease looked free but this run could not take it (%s): another run took "
                "it, or a run killed inside a transaction still locks %s, which "
                "Firestore frees within about a minute; this run is skipped",
                type(e).__name__,
                self._lease_doc.path,
            )
            return None
        except gexc.GoogleAPIError as e:
            # The commit may have been applied with its answer lost (the retry then finds
            # the transaction closed): the lease is ours then, and must not sit there
            # unused until it expires.
            held, doc = self._read_both_plain()
            if held.owner == run_id and held.expires_at is not None:
                log.warning("the lease was taken although Firestore's answer was lost (%s)", e)
                return _grant(run_id, held, doc)
            raise wrapped("lease acquisition", e) from e

    def _read_lease_doc(self) -> dict[str, Any] | None:
        if self._lease_doc is self._doc:
            return self.read()
        try:
            snapshot = self._lease_doc.get(timeout=TIMEOUT_S)
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the backfill lease", e) from e
        return snapshot.to_dict() if snapshot.exists else None

    def _read_both_plain(self) -> tuple[Lease, dict[str, Any]]:
        """Outside a transaction: the lease, and the document with the checkpoint."""
        doc = self.read() or {}
        if self._lease_doc is self._doc:
            return lease_of(doc), doc
        return lease_of(self._read_lease_doc()), doc

    def _read_both(self, txn: firestore.Transaction) -> tuple[Lease, dict[str, Any]]:
        """In a transaction: the lease, and the document with the checkpoint."""
        snapshot = self._doc.get(transaction=txn)
        doc = (snapshot.to_dict() if snapshot.exists else None) or {}
        if self._lease_doc is self._doc:
            return lease_of(doc), doc
        held = self._lease_doc.get(transaction=txn)
        return lease_of(held.to_dict() if held.exists else None), doc

    def _put_lease(
        self, txn: firestore.Transaction, fields: dict[str, Any], lease: Lease, now: datetime
    ) -> None:
        """The lease into `fields` (the job: one document) or into the shared backfill
        lease's own document (one write per document and transaction)."""
        if self._lease_doc is self._doc:
            fields["lease"] = lease_fields(lease)
        else:
            txn.set(self._lease_doc, {"lease": lease_fields(lease), "updated_at": now}, merge=True)

    @property
    def records(self) -> BlockStore:
        """The processed-event set (the `Records` port), fenced by this state's lease."""
        return self._records

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        """Fenced update: checkpoint and/or lease renewal, or the run's end (release; or,
        with `lease_until`, the lease kept until then: requests may still be accepted)."""
        progress, lease_until, summary = change.progress, change.lease_until, change.summary
        rpc_limits, looked_at = change.rpc_limits, change.looked_at

        @firestore.transactional
        def write(txn: firestore.Transaction) -> None:
            lease, doc = self._read_both(txn)
            check_fence(lease, grant.run_id, grant.fence)
            update: dict[str, Any] = {"updated_at": now, **self._identity}
            if doc.get("first_commit_at") is None:  # no record of it is older: see `reset`
                update["first_commit_at"] = now
            totals = _totals(doc)
            if progress is not None:
                totals = totals.plus(progress)
                stored = doc.get("next_block")
                stored_next = None if stored is None else int(stored)
                moved = advance(stored_next, _refs(doc.get("recent_blocks")), progress)
                if moved is not None:
                    if progress.replay is not None:
                        update["replay"] = {
                            "from": progress.replay.start,
                            "to": progress.replay.end,
                        }
                    update.update(
                        next_block=moved.next_block,
                        checkpoint_block_hash=moved.block_hash,
                        recent_blocks=[{"number": r.number, "hash": r.hash} for r in moved.recent],
                    )
            if looked_at is not None:
                update["last_look_at"] = looked_at
            if rpc_limits is not None:
                update["rpc_limits"] = [{"host": h, "blocks": n} for h, n in rpc_limits.items()]
            if summary is not None:
                totals = totals.counting(summary.outcome)
                update.update(_finish_fields(doc, update, summary))
            renewed = lease_after(lease, grant, finished=summary is not None, until=lease_until)
            if renewed is not None:
                self._put_lease(txn, update, renewed, now)
            update["totals"] = _totals_fields(totals)
            txn.set(self._doc, update, merge=True)

        try:
            write(self._client.transaction(max_attempts=COMMIT_ATTEMPTS))
        except (LeaseLostError, gexc.GoogleAPIError, ValueError) as e:
            # A commit applied whose answer was lost looks like a failure (or, once it
            # released the lease, like a lease lost): look before calling it one.
            if self._applied(grant, lease_until, summary):
                log.warning("the commit was applied although Firestore's answer was lost")
                return
            if isinstance(e, LeaseLostError):
                raise
            raise wrapped("checkpoint commit", e) from e

    def _applied(
        self, grant: Grant, lease_until: datetime | None, summary: RunSummary | None
    ) -> bool:
        """Whether this run's commit is in Firestore: its summary (the last commit), or
        its lease renewal (every other commit renews)."""
        try:
            held, doc = self._read_both_plain()
        except StateError:
            return False
        if summary is not None:
            last = doc.get("last_run") or {}
            return bool(
                last.get("run_id") == grant.run_id
                and last.get("finished_at") == summary.finished_at
            )
        return (
            lease_until is not None
            and held.owner == grant.run_id
            and held.fence == grant.fence
            and held.expires_at == lease_until
        )

    def release(self, grant: Grant, now: datetime) -> None:
        """Give the lease back without recording a run (operator commands)."""

        @firestore.transactional
        def write(txn: firestore.Transaction) -> None:
            snapshot = self._lease_doc.get(transaction=txn)
            lease = lease_of(snapshot.to_dict() if snapshot.exists else None)
            if leases.still_ours(lease, grant.run_id, grant.fence):
                fields: dict[str, Any] = {"updated_at": now}
                self._put_lease(txn, fields, leases.released(lease), now)
                txn.set(self._doc, fields, merge=True)

        try:
            write(self._client.transaction())
        except (gexc.GoogleAPIError, ValueError) as e:
            raise wrapped("lease release", e) from e

    def count_skipped(self, now: datetime) -> None:
        """A skipped run only counts itself: the run holding the lease owns `last_run`."""
        try:
            self._doc.set(
                {
                    "totals": {
                        "runs": firestore.Increment(1),
                        "outcomes": {SKIPPED: firestore.Increment(1)},
                    }
                },
                merge=True,
                timeout=TIMEOUT_S,
            )
        except gexc.GoogleAPIError as e:
            raise wrapped("run counter update", e) from e
