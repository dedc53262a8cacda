"""The relayer's state in Firestore (docs/CONTRACT.md §4): lease, checkpoint, processed-event set.

Every write is conditional (`conditional`), none is a read-write transaction: a plain read,
the decision in the pure core (`core.lease`, `core.commit`), then one batch whose writes are
conditioned on the versions read, so it lands only while the documents are as read; when
they changed (another run took the lease, a skipped run counted itself) it is read and
decided again, a bounded number of times. A transaction would lock what it read, and a run
killed inside one would lock the relayer out until Firestore expired it (a minute), whatever
RELAYER_LEASE_SECONDS says. The fence is as strong as before: a run whose lease was taken
over writes nothing more (docs/CONTRACT.md §7.6), block records included (`blockstore`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

import function.core.lease as leases
from function.adapters.firestore import children as child_pages
from function.adapters.firestore import conditional
from function.adapters.firestore.blockstore import BlockStore
from function.adapters.firestore.claims import REGISTRY, Claims, progress
from function.adapters.firestore.conditional import (
    ATTEMPTS,
    READS,
    TIMEOUT_S,
    WRITES,
    Version,
    wrapped,
)
from function.adapters.firestore.leasedoc import lease_fields, lease_of
from function.adapters.firestore.relayerdoc import check_readable, commit_fields, grant_of
from function.core import identity
from function.core.backfills import Claim, claim_of
from function.core.checkpoint import Commit, Grant
from function.core.commit import lease_after
from function.core.identity import Identity
from function.core.lease import Lease, check_fence
from function.core.planning import BlockRange
from function.core.summary import SKIPPED
from function.core.watch import Child, ChildWrite
from function.errors import DeploymentError, StateError

log = logging.getLogger(__name__)

BACKFILL_LEASE = REGISTRY  # the task document of the backfills' claims on their ranges
# Children pages (each up to ~630 kB) per batch written ahead of a commit: under the
# emulator's 4 MiB request.
PAGES_PER_BATCH = 4


def _landed(token: dict[str, Any], change: Commit, doc: Version) -> bool:
    """Whether a commit whose answer was lost is in the relayer document: its token, or, for
    a run's last commit, its summary (a waiter that took the lease since may have committed
    over the token, never over another run's summary before its own end)."""
    fields = doc.fields or {}
    if fields.get("last_commit") == token:
        return True
    summary = change.summary
    if summary is None:
        return False
    last = fields.get("last_run") or {}
    return bool(
        last.get("run_id") == summary.run_id and last.get("finished_at") == summary.finished_at
    )


class FirestoreState:
    """One relayer's state document and its `blocks` subcollection."""

    def __init__(
        self,
        client: firestore.Client,
        relayer_id: str,
        identity: dict[str, Any],
        task: str | None = None,
        guard: Identity | None = None,
    ) -> None:
        self._client = client
        relayer = client.collection("relayers").document(relayer_id)
        # A task (a backfill) has its own checkpoint and lease beside the scheduled job's
        # and shares the processed-event set, so neither publishes what the other did.
        # Tasks of overlapping ranges take turns through their claims (`claims`): two
        # running at once would read the same unrecorded blocks and both publish them.
        self._tasks = relayer.collection("tasks")
        self._children = relayer.collection("children")  # RELAYER_FACTORY: the job's
        self._task = task
        self._doc = relayer.collection("tasks").document(task) if task else relayer
        self._lease_doc = self._doc
        self._claims = None
        if task:
            # A task whose name is no range claims every block: it waits for all others.
            own = claim_of(task) or Claim(task, BlockRange(0, 2**63 - 1))
            self._claims = Claims(client, self._tasks, own)
        # The job's one document as its own last write left it: the next commit, and the
        # block records fenced by it, skip a read (two round trips fewer per chunk). A
        # task's lease lives in a document shared by every backfill: always read.
        self._known = conditional.Known()
        self._records = BlockStore(
            client,
            relayer.collection("blocks"),
            self._lease_doc,
            self._known if self._lease_doc is self._doc else None,
        )
        self._identity = identity  # chain_id and contracts, written with every commit
        # A task shares the relayer's contracts by construction; only the job's own state is
        # judged (`core.identity`) before a run writes its contracts over the stored ones.
        self._guard = None if task else guard

    def backfilled(self) -> dict[str, tuple[BlockRange, datetime | None]]:
        """What backfills relayed, by task: each range's start up to its checkpoint, and
        the time of its first commit (no record of it is older)."""
        try:
            snapshots = conditional.documents(self._tasks)
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the backfill checkpoints", e) from e
        done = {}
        for snapshot in snapshots:
            name, fields = snapshot.id, snapshot.to_dict() or {}
            claim = claim_of(name)
            if claim is None or fields.get("next_block") is None:
                continue  # the backfills' registry, or a range that never committed
            start = claim.blocks.start
            end = min(claim.blocks.end, int(fields["next_block"]) - 1)
            if start <= end:
                done[name] = (BlockRange(start, end), fields.get("first_commit_at"))
        return done

    def backfills(self, now: datetime, timeout_s: float) -> list[dict[str, Any]]:
        """Each backfill task's range and progress, one quick attempt (for status)."""
        try:
            return progress(self._tasks, now, timeout_s)
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the backfill tasks", e) from e

    def read(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The relayer document as it is; with `timeout_s`, one quick attempt (status must
        answer, unhealthy, while Firestore is down)."""
        try:
            if timeout_s is None:
                snapshot = self._doc.get(retry=READS, timeout=TIMEOUT_S)
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
        sent: Lease | None = None  # the lease last written: found in place, it was applied
        for _ in range(ATTEMPTS):
            doc, lease_doc = self._read_both()
            held = lease_of(lease_doc.fields)
            if sent is not None and held == sent:
                log.warning("the lease was taken although Firestore's answer was lost")
                return grant_of(run_id, held, doc.doc)
            self._judge(doc.fields)  # on every fresh read: another run may have written
            check_readable(doc.doc, self._doc.path)
            lease = leases.acquire(held, run_id, now, lease_s, follow_until)
            if lease is None:
                return None
            batch = self._client.batch()
            if self._claims is not None and not self._claims.put(batch, run_id, now):
                return None  # a backfill of an overlapping range is running
            fields: dict[str, Any] = {"updated_at": now, **self._identity}
            if "contracts" in self._identity and self._lease_doc is self._doc:
                fields["contracts_seen"] = identity.seen(doc.fields, self._identity["contracts"])
            self._put_lease(batch, fields, lease, now, lease_doc)
            conditional.put(self._client, batch, doc, fields)
            sent = lease
            try:
                results = batch.commit(retry=WRITES, timeout=TIMEOUT_S)
                self._remember(doc, fields, results)
                return grant_of(run_id, lease, doc.doc)
            except gexc.GoogleAPIError as e:
                if conditional.conflicted(e):
                    continue  # another run took it, or counted itself: read again
                # Applied with its answer lost? The lease is ours then, and must not sit
                # there unused until it expires.
                try:
                    doc, lease_doc = self._read_both()
                except StateError:
                    raise wrapped("lease acquisition", e) from e
                if lease_of(lease_doc.fields) == sent:
                    log.warning("the lease was taken although Firestore's answer was lost (%s)", e)
                    return grant_of(run_id, sent, doc.doc)
                raise wrapped("lease acquisition", e) from e
        log.warning(
            "the lease looked free but %s changed under each of %d attempts to take it: "
            "runs are taking it right now; this run is skipped",
            self._lease_doc.path,
            ATTEMPTS,
        )
        return None

    def _judge(self, stored: dict[str, Any] | None) -> None:
        """Refuse (exit 2) a configuration that would start this state over or leave an
        added contract's history out; say which contracts were dropped."""
        if self._guard is None:
            return
        verdict = self.identity_verdict(stored)
        if verdict.refused:
            raise DeploymentError(verdict.refused)
        if verdict.dropped:
            log.warning(
                "CONTRACT_ADDRESS no longer lists %s: relayer %s stops relaying it",
                ", ".join(verdict.dropped),
                self._guard.relayer_id,
            )

    def identity_verdict(self, stored: dict[str, Any] | None) -> identity.Verdict:
        """What `core.identity` says of this configuration over `stored` (this relayer's
        document as read), the other relayers read when it is no state yet."""
        assert self._guard is not None
        others: list[tuple[str, dict[str, Any]]] = []
        if not identity.is_state(stored):
            others = self._relayers()
        return identity.judge(self._guard, stored, others)

    def _relayers(self) -> list[tuple[str, dict[str, Any]]]:
        """Every relayer of the database, its chain, contracts, factory, topic and checkpoint only
        (a first run's one query: a state that exists is never asked this)."""
        query = self._client.collection("relayers").select(
            ["chain_id", "contracts", "next_block", "topic", "factory"]
        )
        try:
            return [(s.id, s.to_dict() or {}) for s in conditional.documents(query)]
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the other relayers", e) from e

    def _read_lease_doc(self) -> dict[str, Any] | None:
        if self._lease_doc is self._doc:
            return self.read()
        try:
            snapshot = self._lease_doc.get(retry=READS, timeout=TIMEOUT_S)
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the backfill lease", e) from e
        return snapshot.to_dict() if snapshot.exists else None

    def _remember(self, read: Version, fields: dict[str, Any], results: Any) -> None:
        if self._lease_doc is self._doc:
            self._known.after(read, fields, results)

    def _read_both(self) -> tuple[Version, Version]:
        """The document with the checkpoint, and the one with the lease (the same one for
        the job), each with the version a write is conditioned on: as this run's own last
        write left it when that is known (`conditional.Known`), read otherwise."""
        known = self._known.take()
        if known is not None:
            return known, known
        doc = conditional.read(self._doc, "the relayer document")
        if self._lease_doc is self._doc:
            return doc, doc
        return doc, conditional.read(self._lease_doc, "the backfill lease")

    def _put_lease(
        self, batch: Any, fields: dict[str, Any], lease: Lease, now: datetime, lease_doc: Version
    ) -> None:
        """The lease into `fields` (the job: one document) or, conditioned on its version
        read, into the shared backfill lease's own document."""
        if self._lease_doc is self._doc:
            fields["lease"] = lease_fields(lease)
            return
        stored = {"lease": lease_fields(lease), "updated_at": now}
        conditional.put(self._client, batch, lease_doc, stored)

    def children(self, grant: Grant) -> tuple[list[Child], int | None]:
        """RELAYER_FACTORY: the children stored with the checkpoint of `grant`, and the block
        up to which creations were looked for (None: never). A backfill's task stores none:
        it finds its own from START_BLOCK on (`relay`)."""
        if self._task:
            return [], None
        return child_pages.load(self._client, self._children, grant.children_count), (
            grant.children_to
        )

    @property
    def records(self) -> BlockStore:
        """The processed-event set (the `Records` port), fenced by this state's lease."""
        return self._records

    def commit(self, grant: Grant, now: datetime, change: Commit) -> None:
        """Fenced update: checkpoint and/or lease renewal, or the run's end (release; or,
        with `lease_until`, the lease kept until then: requests may still be accepted)."""
        sent = False  # a batch of this commit went out: it may have landed unanswered
        # What only this commit writes: its answer lost, it is recognised by this alone, not
        # by fields that other writers change meanwhile (a waiter's lease, a skipped run's
        # count), which would make an applied commit look failed or count it twice.
        token = {"run_id": grant.run_id, "fence": grant.fence, "id": uuid.uuid4().hex[:16]}
        if self._task and change.children is not None:
            change = replace(change, children=None)  # the job's children, never a task's
        for _ in range(ATTEMPTS):
            doc, lease_doc = self._read_both()
            # A commit applied whose answer was lost looks like a conflict when the library
            # sends it again (or, once it released the lease, like a lease lost): look
            # before deciding again, or its counts would be added twice.
            if sent and _landed(token, change, doc):
                log.warning("the commit was applied although Firestore's answer was lost")
                return
            held = lease_of(lease_doc.fields)
            check_fence(held, grant.run_id, grant.fence)  # LeaseLostError: nothing written
            update = commit_fields(doc.doc, now, change, self._identity)
            update["last_commit"] = token
            renewed = lease_after(
                held, grant, finished=change.summary is not None, until=change.lease_until
            )
            batch = self._client.batch()
            if renewed is not None:
                self._put_lease(batch, update, renewed, now, lease_doc)
            elif lease_doc is not doc:  # the fence still holds the batch back
                conditional.unchanged(self._client, batch, lease_doc, "lease.fence", held.fence)
            if change.children is not None and "children" in update:  # the checkpoint moved
                try:
                    self._put_children(batch, change.children, doc, lease_doc, held.fence, now)
                except gexc.GoogleAPIError as e:
                    if conditional.conflicted(e):
                        continue  # the lease changed: read and decide again
                    raise wrapped("write of the factory's children", e) from e
            conditional.put(self._client, batch, doc, update)  # last: `_remember` reads it
            sent = True
            try:
                results = batch.commit(retry=WRITES, timeout=TIMEOUT_S)
                if change.summary is None:  # a run's end: nothing more to write
                    self._remember(doc, update, results)
                return
            except gexc.GoogleAPIError as e:
                if conditional.conflicted(e):
                    continue  # a skipped run counted itself, or the lease was taken: again
                try:
                    doc, lease_doc = self._read_both()
                except StateError:
                    raise wrapped("checkpoint commit", e) from e
                if _landed(token, change, doc):
                    log.warning("the commit was applied although Firestore's answer was lost")
                    return
                raise wrapped("checkpoint commit", e) from e
        raise conditional.exhausted("checkpoint commit", self._doc)

    def _put_children(
        self,
        batch: Any,
        children: ChildWrite,
        doc: Version,
        lease_doc: Version,
        fence: int,
        now: datetime,
    ) -> None:
        """The pages that change into the commit's `batch`; the pages wholly past the stored
        children first, in batches of their own under the fence (nobody reads them before
        the commit counts them: `children.ahead`)."""
        before = child_pages.stored_count(doc.doc)
        writes = child_pages.page_writes(children, before, now)
        early = child_pages.ahead(writes, before)
        for n in range(0, len(early), PAGES_PER_BATCH):
            ahead = self._client.batch()
            for page, fields in early[n : n + PAGES_PER_BATCH]:
                ahead.set(self._children.document(page), fields)
            conditional.unchanged(self._client, ahead, lease_doc, "lease.fence", fence)
            # A conflict: the commit is read and decided again.
            ahead.commit(retry=WRITES, timeout=TIMEOUT_S)
        written = {page for page, _ in early}
        for page, value in writes:
            if page in written:
                continue
            ref = self._children.document(page)
            if value is None:
                batch.delete(ref)
            else:
                batch.set(ref, value)

    def release(self, grant: Grant, now: datetime) -> None:
        """Give the lease back without recording a run (operator commands)."""
        for _ in range(ATTEMPTS):
            lease_doc = conditional.read(self._lease_doc, "the lease")
            lease = lease_of(lease_doc.fields)
            if not leases.still_ours(lease, grant.run_id, grant.fence):
                return  # taken over, or released already (an answer lost)
            batch = self._client.batch()
            fields: dict[str, Any] = {"updated_at": now}
            self._put_lease(batch, fields, leases.released(lease), now, lease_doc)
            if self._lease_doc is self._doc:
                conditional.put(self._client, batch, lease_doc, fields)
            else:
                batch.set(self._doc, fields, merge=True)
            try:
                batch.commit(retry=WRITES, timeout=TIMEOUT_S)
                return
            except gexc.GoogleAPIError as e:
                if not conditional.conflicted(e):
                    raise wrapped("lease release", e) from e
        raise conditional.exhausted("lease release", self._lease_doc)

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
                retry=WRITES,
                timeout=TIMEOUT_S,
            )
        except gexc.GoogleAPIError as e:
            raise wrapped("run counter update", e) from e
