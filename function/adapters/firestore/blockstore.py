"""The processed-event set in Firestore: block records read back whole, written fenced.

A record is written before the checkpoint commit, fenced like that commit: a run that lost its
lease writes nothing (docs/CONTRACT.md §7.6), or its partial record of a block would replace
the whole one of the run that took over. The fence is a conditional write, not a transaction
(whose lock on the lease document would outlive a run killed inside it: `conditional`): a
plain read of the lease document, the fence checked, then one batch with the record documents
and a no-op write of the lease document conditioned on the version read, so the batch lands
only while nobody took the lease since. Each batch holds at most WRITES_PER_BATCH documents
and BYTES_PER_BATCH bytes of request (a commit is capped at 500 writes and by request size).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types.write import Write

from function.adapters.firestore import conditional
from function.adapters.firestore.blockparts import assembled, stored_parts
from function.adapters.firestore.conditional import ATTEMPTS, TIMEOUT_S, WRITES, wrapped
from function.adapters.firestore.docsize import write_batches
from function.adapters.firestore.leasedoc import lease_of
from function.adapters.firestore.recordlayout import base_id, from_doc, to_doc
from function.adapters.firestore.wire import set_write
from function.core.lease import check_fence
from function.core.model import BlockRecord, BlockRef
from function.core.planning import BlockRange

if TYPE_CHECKING:
    from function.core.checkpoint import Grant

WRITES_PER_BATCH = 400  # and the lease document's condition: under Firestore's 500
BYTES_PER_BATCH = 3_000_000  # under the emulator's 4 MiB request cap (production: 10 MiB)


def _wire_size(w: Write) -> int:
    """A write's bytes in the request: what the request cap counts."""
    return int(Write.pb(w).ByteSize())


def _chain_order(doc_id: str) -> tuple[int, str]:
    number, _, block_hash = doc_id.partition("-")
    return int(number), block_hash


class BlockStore:
    """The `blocks` subcollection of one relayer, fenced by the document holding its lease."""

    def __init__(
        self,
        client: firestore.Client,
        blocks: firestore.CollectionReference,
        lease_doc: firestore.DocumentReference,
        known: conditional.Known | None = None,
    ) -> None:
        self._client = client
        self._blocks = blocks
        self._lease_doc = lease_doc
        self._known = known  # the lease document as the state's last write left it

    def read(self, start: int, end: int | None = None) -> list[BlockRecord]:
        """The records of blocks start..end (end None: every later one), whole (parts
        reassembled, `data` as text), in chain order."""
        return [from_doc(fields) for _, fields in self._assembled(self._between(start, end))]

    def refs(self, blocks: BlockRange) -> list[BlockRef]:
        """The blocks of the range that have records, by number and hash: document ids
        only, so cheap enough to ask on every run."""
        query = self._between(blocks.start, blocks.end).select([FieldPath.document_id()])
        return self._refs(query)

    def _between(self, start: int, end: int | None) -> Any:
        """Block documents of blocks start..end, by the `block_number` field: document ids
        pad numbers to 12 digits only, so from 10**12 on their order is not the chain's and
        an id range would miss blocks."""
        query = self._blocks.where(filter=FieldFilter("block_number", ">=", start))
        if end is not None:
            query = query.where(filter=FieldFilter("block_number", "<=", end))
        return query

    def _refs(self, query: Any) -> list[BlockRef]:
        try:
            ids = {base_id(s.id) for s in conditional.documents(query)}
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the processed-event set", e) from e
        refs = []
        for doc_id in ids:
            number, _, block_hash = doc_id.partition("-")
            refs.append(BlockRef(int(number), block_hash))
        return sorted(refs, key=lambda r: (r.number, r.hash))

    def refs_below(self, number: int, limit: int) -> list[BlockRef]:
        """The newest `limit` blocks with records below block `number` (ids only): after a
        reorganisation deeper than `recent_blocks`, they still name relayed blocks."""
        query = (  # by the field: Firestore scans document ids in ascending order only
            self._blocks.where(filter=FieldFilter("block_number", "<", number))
            .order_by("block_number", direction=firestore.Query.DESCENDING)
            .limit(limit)
            .select([FieldPath.document_id()])
        )
        return self._refs(query)

    def _assembled(self, query: Any) -> list[tuple[str, dict[str, Any]]]:
        by_block: dict[str, list[dict[str, Any]]] = {}
        try:
            for snapshot in conditional.documents(query):
                by_block.setdefault(base_id(snapshot.id), []).append(snapshot.to_dict() or {})
        except gexc.GoogleAPIError as e:
            raise wrapped("read of the processed-event set", e) from e
        return [(i, assembled(by_block[i])) for i in sorted(by_block, key=_chain_order)]

    def write(self, grant: Grant, records: Sequence[BlockRecord]) -> None:
        """Write block records (before the checkpoint that relies on them) under the fence,
        each in as many documents as Firestore's 1 MiB limit needs: a run that lost its
        lease must not replace the newer run's record with its own partial one (§7.6)."""
        written_at = datetime.now(UTC)  # orders rewrites of a block (see blockparts)
        prefix = self._blocks.document("-")._document_path[:-1]
        writes = [
            set_write(prefix + doc_id, fields)
            for record in records
            for doc_id, fields in stored_parts(to_doc(record), written_at)
        ]  # encoded once (`wire`): a batch sent again after a conflict reuses them
        for group in write_batches(writes, WRITES_PER_BATCH, BYTES_PER_BATCH, _wire_size):
            self._fenced_write(grant, group)

    def _fenced_write(self, grant: Grant, group: Sequence[Write]) -> None:
        """One group of block documents in a batch that lands only while the lease read is
        unchanged; read again when it changed (a commit or a skipped run's count did)."""
        for _ in range(ATTEMPTS):
            known = self._known.take() if self._known is not None else None
            lease_doc = known or conditional.read(self._lease_doc, "the lease")
            lease = lease_of(lease_doc.fields)
            check_fence(lease, grant.run_id, grant.fence)  # LeaseLostError: nothing written
            batch = self._client.batch()
            batch._add_write_pbs(list(group))  # what `batch.set` adds, encoded by `wire`
            conditional.unchanged(self._client, batch, lease_doc, "lease.fence", lease.fence)
            try:
                results = batch.commit(retry=WRITES, timeout=TIMEOUT_S)
                if self._known is not None:
                    # The no-op is the batch's last write; its result holds the lease
                    # document's version after it (the same, for a write that changed
                    # nothing: Firestore's WriteResult.update_time).
                    self._known.after(lease_doc, {}, results)
                return
            except gexc.GoogleAPIError as e:
                # A batch applied whose answer was lost is sent again by the library: the
                # records are the same and the no-op leaves the lease's version as it was,
                # so that lands too, or fails its condition and is decided again here.
                if not conditional.conflicted(e):
                    raise wrapped("write of the processed-event set", e) from e
        raise conditional.exhausted("write of the processed-event set", self._lease_doc)
