"""The factory's children in Firestore (RELAYER_FACTORY): pages beside the relayer document.

`relayers/{RELAYER_ID}/children/{page, 6 digits}`, each holding `PAGE_SIZE` children in chain
order as lines `{address} {creation block}` (readable in the console; searching a page for an
address answers "is this contract relayed, from when?"), with `count`, `first_block` and
`last_block`. The relayer document's `children` map says how many there are (`count`) and up
to which block they were looked for (`to_block`, the checkpoint they were committed with).

Pages, not a document per child: a run reads every child at its start, and hundreds of
thousands of children are tens of reads this way, not hundreds of thousands (each billed).
The pages change only at their end (children come in chain order, a rewind cuts the newest),
so a commit rewrites the last page or two, written in the same atomic batch as the
checkpoint and fenced by it: the stored children are always exactly those below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from function.adapters.firestore.conditional import READS, TIMEOUT_S, wrapped
from function.core.watch import Child, ChildWrite
from function.errors import StateError

PAGE_SIZE = 10_000  # ~53 bytes a line: about 530 kB of the 1 MiB a document may hold


def page_id(index: int) -> str:
    return f"{index:06d}"


def stored_count(doc: dict[str, Any]) -> int:
    return int((doc.get("children") or {}).get("count") or 0)


def page_writes(
    write: ChildWrite, before: int, now: datetime
) -> list[tuple[str, dict[str, Any] | None]]:
    """The pages to set (fields) or delete (None) so that the pages hold `write.children`,
    where they held `before` children of which the first `write.changed_from` stay."""
    after = len(write.children)
    start = min(write.changed_from, before)  # the first child that may differ
    pages_after = -(-after // PAGE_SIZE)
    pages_before = -(-before // PAGE_SIZE)
    writes: list[tuple[str, dict[str, Any] | None]] = []
    first = start // PAGE_SIZE if start < after else pages_after  # nothing new: no page
    for index in range(first, pages_after):
        part = write.children[index * PAGE_SIZE : (index + 1) * PAGE_SIZE]
        writes.append((page_id(index), _page(part, now)))
    writes += [(page_id(i), None) for i in range(pages_after, pages_before)]
    return writes


def _page(children: Sequence[Child], now: datetime) -> dict[str, Any]:
    return {
        "children": "\n".join(f"{c.address} {c.block_number}" for c in children),
        "count": len(children),
        "first_block": children[0].block_number,
        "last_block": children[-1].block_number,
        "updated_at": now,
    }


def load(
    client: firestore.Client, collection: firestore.CollectionReference, count: int
) -> list[Child]:
    """The `count` stored children, in chain order (one batched read of every page)."""
    if count <= 0:
        return []
    pages = -(-count // PAGE_SIZE)
    refs = [collection.document(page_id(i)) for i in range(pages)]
    try:
        snapshots = {s.id: s for s in client.get_all(refs, retry=READS, timeout=TIMEOUT_S)}
    except gexc.GoogleAPIError as e:
        raise wrapped("read of the factory's children", e) from e
    children: list[Child] = []
    for i in range(pages):
        snapshot = snapshots.get(page_id(i))
        fields = snapshot.to_dict() if snapshot is not None and snapshot.exists else None
        if not fields:
            raise StateError(
                f"page {page_id(i)} of the factory's children (relayers/…/children) is missing "
                f"while the relayer document counts {count} children: restore it from a "
                "backup, or `relayer reset` to a block before the factory's first creation"
            )
        for line in str(fields.get("children") or "").splitlines():
            address, block = line.split()
            children.append(Child(address, int(block)))
    if len(children) < count:
        raise StateError(
            f"the factory's children pages (relayers/…/children) hold {len(children)} children, "
            f"the relayer document counts {count}: restore them from a backup"
        )
    # More: pages written ahead of a commit that did not land (`ahead`), or an export that
    # read the pages after a later commit. Children come in chain order, so the first
    # `count` are those of the document's checkpoint.
    return children[:count]


def ahead(
    writes: list[tuple[str, dict[str, Any] | None]], before: int
) -> list[tuple[str, dict[str, Any]]]:
    """The pages of `writes` wholly past the `before` children stored: invisible until the
    checkpoint's commit counts them, so they may go ahead of it in batches of their own (a
    commit of every page at once would pass Firestore's request size with some 100,000 new
    children)."""
    return [
        (page, fields)
        for page, fields in writes
        if fields is not None and int(page) * PAGE_SIZE >= before
    ]
