"""The top-level fields of block record documents that hold large values, from the writer's
own code: every one must be exempt from indexing in infra/ and deploy.sh."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from function.adapters.firestore.blockparts import stored_parts
from function.adapters.firestore.docsize import value_size
from function.adapters.firestore.recordlayout import to_doc
from function.core.model import PUBLISHED, BlockRecord, RecordEntry

# Firestore indexes at most 1,500 bytes of a value: past that an index entry is the cost of
# a write and of storage for a value nobody can query whole anyway.
INDEXED_BYTES = 1_500


def large_block_fields() -> set[str]:
    """Fields of a busy block's documents (100 events of 1.2 KB messages, and one message
    of 200 KB, stored as a map entry) with a value over INDEXED_BYTES."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    entries = tuple(
        RecordEntry(
            f"31337:0x{'a' * 40}:0x{i:064x}:{i}", i, f"0x{i:064x}", "Deposited", str(10**15 + i),
            PUBLISHED, json.dumps({"n": i, "pad": f"{i:x}" * (1_200 if i else 50_000)}),
        )
        for i in range(100)
    )  # fmt: skip
    record = BlockRecord(7, "0x" + "b" * 64, entries, "run", now, now + timedelta(days=7))
    large = set()
    for _, fields in stored_parts(to_doc(record), now):
        large |= {name for name, value in fields.items() if value_size(value) > INDEXED_BYTES}
    return large
