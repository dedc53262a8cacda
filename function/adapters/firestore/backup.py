"""A relayer's state carried between databases and projects: export to JSON lines, import.

The export reads the relayer document first, then its task documents, then its block
records, so the checkpoint it carries is never ahead of the records it carries (a record is
written before the commit that moves the checkpoint past its block; records newer than the
checkpoint are harmless: the next run reads them as it would after a crash).

The import never lands beside state it could contradict: it creates the relayer document
(failing if one exists) holding a lease of its own, so no run starts from START_BLOCK or
relays while the records are still arriving; it writes the records and the task documents,
then lets the lease go with a fence above the exported one. An import cut short is resumed
by running it again with the same file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from function.adapters.firestore.blockstore import BYTES_PER_BATCH, WRITES_PER_BATCH
from function.adapters.firestore.children import PAGE_SIZE, page_id, stored_count
from function.adapters.firestore.conditional import READS, TIMEOUT_S, WRITES, documents
from function.adapters.firestore.docsize import write_batches
from function.adapters.firestore.leasedoc import lease_fields, lease_of
from function.core.lease import Lease
from function.errors import ConfigError, StateError

FORMAT = "relayer-state"
VERSION = 1
# The subcollections of a relayer an export holds; version 1 files without children still read.
KINDS = ("tasks", "blocks", "children")
PAGE = 500  # documents read per query page
IMPORT_LEASE_S = 900.0  # renewed with every batch: an import cut short frees it by then


@dataclass
class Counts:
    blocks: int = 0
    tasks: int = 0
    children: int = 0  # RELAYER_FACTORY: pages of the factory's children


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$time": value.astimezone(UTC).isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$time"}:
            return datetime.fromisoformat(value["$time"])
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _pages(collection: Any) -> Iterator[Any]:
    """Every document of a collection, in id order, a page at a time (a stream of tens of
    thousands of block records would outlive one request)."""
    last = None
    while True:
        query = collection.order_by("__name__").limit(PAGE)
        if last is not None:
            query = query.start_after(last)
        page = documents(query)
        yield from page
        if len(page) < PAGE:
            return
        last = page[-1]


def record_count(client: firestore.Client, relayer_id: str) -> int:
    """How many block records an export will carry (one aggregation query), for progress."""
    blocks = client.collection("relayers").document(relayer_id).collection("blocks")
    try:
        result = blocks.count().get(retry=READS, timeout=TIMEOUT_S)
    except gexc.GoogleAPIError as e:
        raise StateError(f"count of relayer {relayer_id}'s block records failed: {e}") from e
    return int(result[0][0].value)


def export_state(
    client: firestore.Client,
    relayer_id: str,
    out: IO[str],
    progress: Callable[[int], None] = lambda n: None,
) -> Counts:
    """Write the relayer's documents to `out`, one JSON object a line (a header first)."""
    relayer = client.collection("relayers").document(relayer_id)
    try:
        snapshot = relayer.get(retry=READS, timeout=TIMEOUT_S)
        if not snapshot.exists:
            raise ConfigError(
                f"relayer {relayer_id} has no state in this database: check RELAYER_ID, "
                "FIRESTORE_PROJECT_ID and FIRESTORE_DATABASE"
            )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "relayer_id": relayer_id,
            "exported_at": datetime.now(UTC).isoformat(),
        }
        out.write(json.dumps(header) + "\n")
        out.write(json.dumps({"doc": "", "fields": _encode(snapshot.to_dict() or {})}) + "\n")
        counts = Counts()
        held: dict[str, int] = {}  # children per page, as exported
        for kind in KINDS:
            for doc in _pages(relayer.collection(kind)):
                fields = doc.to_dict() or {}
                line = {"doc": f"{kind}/{doc.id}", "fields": _encode(fields)}
                out.write(json.dumps(line) + "\n")
                if kind == "tasks":
                    counts.tasks += 1
                elif kind == "children":
                    counts.children += 1
                    held[doc.id] = int(fields.get("count") or 0)
                else:
                    counts.blocks += 1
                    progress(1)
    except gexc.GoogleAPIError as e:
        raise StateError(f"export of relayer {relayer_id} failed: {e}") from e
    _check_children(relayer_id, snapshot.to_dict() or {}, held)
    return counts


def _check_children(relayer_id: str, doc: dict[str, Any], held: dict[str, int]) -> None:
    """The pages read after the relayer document hold at least the children it counts:
    more is a later commit's (an import reads the first ones), fewer a rewind's meanwhile,
    which the file cannot be imported with."""
    count = stored_count(doc)
    pages = -(-count // PAGE_SIZE)
    if sum(held.get(page_id(i), 0) for i in range(pages)) < count:
        raise StateError(
            f"export of relayer {relayer_id}: its factory's children changed while they "
            "were read (a reorganisation rewound them): run the export again"
        )


def read_export(
    lines: Iterable[str], source: str
) -> tuple[str, dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]:
    """The relayer id, its document and the other documents of an export file."""
    it = iter(lines)
    try:
        header = json.loads(next(it))
        relayer_line = json.loads(next(it))
    except (StopIteration, ValueError):
        raise ConfigError(f"{source} is not a relayer export (relayer export writes one)") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ConfigError(
            f"{source} is not a relayer export of version {VERSION} (its header says "
            f"{header.get('format')!r} version {header.get('version')!r})"
        )
    if relayer_line.get("doc") != "":
        raise ConfigError(f"{source}: the relayer document must follow the header")

    def rest() -> Iterator[tuple[str, dict[str, Any]]]:
        for n, raw in enumerate(it, start=3):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                path, fields = str(line["doc"]), _decode(line["fields"])
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"{source} line {n} is not a document of an export") from None
            kind, _, doc_id = path.partition("/")
            if kind not in KINDS or not doc_id or "/" in doc_id:
                raise ConfigError(f"{source} line {n}: unexpected document {path!r}")
            yield path, fields

    return str(header["relayer_id"]), _decode(relayer_line["fields"]), rest()


def _held_for_import(doc: dict[str, Any], owner: str, now: datetime) -> dict[str, Any]:
    exported = lease_of(doc)
    lease = Lease(owner, now + timedelta(seconds=IMPORT_LEASE_S), exported.fence + 1, now)
    return {**doc, "lease": lease_fields(lease), "imported_at": now}


def import_state(
    client: firestore.Client,
    relayer_id: str,
    relayer_doc: dict[str, Any],
    docs: Iterable[tuple[str, dict[str, Any]]],
    owner: str,
    progress: Callable[[int], None] = lambda n: None,
) -> Counts:
    """Write an export into this database under `relayer_id` (see the module's doc)."""
    relayer = client.collection("relayers").document(relayer_id)
    now = datetime.now(UTC)
    held = _held_for_import(relayer_doc, owner, now)
    try:
        try:
            relayer.create(held, retry=WRITES, timeout=TIMEOUT_S)
        except gexc.AlreadyExists:
            current = relayer.get(retry=READS, timeout=TIMEOUT_S).to_dict() or {}
            holder = lease_of(current).owner or ""
            if not holder.startswith("import-"):
                raise ConfigError(
                    f"relayer {relayer_id} already has state in this database (checkpoint "
                    f"{current.get('next_block')}): an import never mixes with it; import "
                    "into another database or project, or delete that relayer's documents first"
                ) from None
            relayer.set(held, retry=WRITES, timeout=TIMEOUT_S)  # an import cut short: resumed
        counts = Counts()
        tasks: list[tuple[str, dict[str, Any]]] = []
        pending: list[tuple[str, dict[str, Any]]] = []
        for path, fields in docs:
            if path.startswith("tasks/"):
                tasks.append((path, _free(fields)))  # small, few: written last
                continue
            if path.startswith("children/"):
                counts.children += 1
            pending.append((path, fields))
            if len(pending) >= WRITES_PER_BATCH:
                counts.blocks += _write(client, relayer, pending, progress)
                relayer.update(
                    {"lease.expires_at": now_plus(IMPORT_LEASE_S)}, retry=WRITES, timeout=TIMEOUT_S
                )
                pending = []
        counts.blocks += _write(client, relayer, pending, progress)
        counts.blocks -= counts.children  # the pages went with the records
        counts.tasks = _write(client, relayer, tasks, lambda n: None)
        released = lease_of(held)
        relayer.update(
            {
                "lease": lease_fields(Lease(None, None, released.fence)),
                "updated_at": datetime.now(UTC),
            },
            retry=WRITES,
            timeout=TIMEOUT_S,
        )
    except gexc.GoogleAPIError as e:
        raise StateError(
            f"import of relayer {relayer_id} failed: {e}; run the same import again to resume"
        ) from e
    return counts


def now_plus(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _free(fields: dict[str, Any]) -> dict[str, Any]:
    """A task document (a backfill's checkpoint, or the backfill lease) with its lease let
    go: the run that held it lives in the old database."""
    if "lease" not in fields:
        return fields
    lease = lease_of(fields)
    return {**fields, "lease": lease_fields(Lease(None, None, lease.fence + 1))}


def _write(
    client: firestore.Client,
    relayer: Any,
    docs: list[tuple[str, dict[str, Any]]],
    progress: Callable[[int], None],
) -> int:
    for group in write_batches(docs, WRITES_PER_BATCH, BYTES_PER_BATCH):
        batch = client.batch()
        for path, fields in group:
            kind, _, doc_id = path.partition("/")
            batch.set(relayer.collection(kind).document(doc_id), fields)
        batch.commit(retry=WRITES, timeout=TIMEOUT_S)
        progress(len(group))
    return len(docs)
