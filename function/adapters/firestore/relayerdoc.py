"""The relayer document's fields (docs/CONTRACT.md §4) to and from the core's types (pure).

A grant is built from the document as read; a commit's fields from the document as read and
the core's decisions (`core.commit`). The state adapter writes them conditioned on that read,
so what is written here was decided on the document as it still is.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any

from function.core.checkpoint import Commit, Grant
from function.core.commit import Totals, advance
from function.core.lease import Lease
from function.core.model import BlockRef
from function.core.planning import BlockRange, Density
from function.core.summary import IDLE, OK, RunSummary
from function.errors import StateError

RUN_HISTORY = 48  # runs kept in `recent_runs`, for the status page's chart


def _replay_range(raw: Any) -> BlockRange | None:
    if not isinstance(raw, dict):
        return None
    return BlockRange(int(raw["from"]), int(raw["to"]))


def grant_of(run_id: str, lease: Lease, doc: dict[str, Any]) -> Grant:
    """The grant of `lease`, with the checkpoint of the document it was taken on."""
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
        int((doc.get("children") or {}).get("count") or 0),
        _maybe_int((doc.get("children") or {}).get("to_block")),
        _density(doc.get("density")),
    )


def _density(raw: Any) -> Density | None:
    """The density the last run learnt; None when there is none, or one this code cannot
    read (it is only a hint for sizing windows: never a reason to fail a run)."""
    if not isinstance(raw, dict):
        return None
    try:
        return Density(
            int(raw["to_block"]), int(raw["blocks"]), int(raw["events"]), str(raw["watched"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def _maybe_int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


RELAYER_DOC = "the relayer document"


def _refs(raw: Any, where: str = RELAYER_DOC) -> tuple[BlockRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _unreadable(where, raw)
    return tuple(_ref(r, where) for r in raw)


_BLOCK_HASH = re.compile(r"0x[0-9a-f]{64}")


def _ref(entry: Any, where: str) -> BlockRef:
    """A kept block: `"{number}:{hash}"`, or the map `{number, hash}` earlier writers left
    (read the same; the next commit rewrites the list as texts). A hash is compared with the
    node's, which are lower case: a hand edit's case and surrounding blanks do not count."""
    number: Any = None
    block_hash: Any = None
    if isinstance(entry, str):
        number, _, block_hash = entry.strip().partition(":")
        number = int(number) if number.isascii() and number.isdigit() else None
    elif isinstance(entry, dict) and entry.keys() == {"number", "hash"}:
        number = entry["number"] if type(entry["number"]) is int else None
        block_hash = entry["hash"]
    if isinstance(block_hash, str):
        block_hash = block_hash.strip().lower()
    if number is None or number < 0 or not _BLOCK_HASH.fullmatch(block_hash or ""):
        raise _unreadable(where, entry)
    return BlockRef(number, block_hash)


def _unreadable(where: str, what: Any) -> StateError:
    return StateError(
        f"{where}: recent_blocks holds {what!r}, which is neither a list nor an entry "
        '"<number>:<0x block hash>" (or {number, hash}); correct it in the console, or delete '
        "the field (the reorganisation check then relies on the block records alone)"
    )


def check_readable(doc: dict[str, Any], where: str) -> None:
    """Raise the StateError `grant_of` would, naming `where`: before a lease is written on a
    document whose checkpoint cannot be read (it would sit there, taken, until it expired)."""
    _refs(doc.get("recent_blocks"), where)


def recent_text(ref: BlockRef) -> str:
    """How `recent_blocks` stores a kept block: one value, not a map of two (a checkpoint
    commit writes all 128 each time; the emulator took about three times as long for maps)."""
    return f"{ref.number}:{ref.hash}"


def _totals(doc: dict[str, Any]) -> Totals:
    raw = doc.get("totals") or {}
    counters = {
        f.name: int(raw.get(f.name) or 0) for f in dataclass_fields(Totals) if f.name != "outcomes"
    }
    outcomes = {k: int(v) for k, v in (raw.get("outcomes") or {}).items()}
    return Totals(**counters, outcomes=outcomes)


def _history_entry(summary: RunSummary, next_block: Any) -> dict[str, Any]:
    lag = None
    if summary.head_block is not None and next_block is not None:
        lag = max(0, summary.head_block - int(next_block) + 1)
    entry: dict[str, Any] = {
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
    if summary.extra.get("reorg"):  # the status page's reorganisation history
        entry["reorg"] = summary.extra["reorg"]
    return entry


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


def commit_fields(
    doc: dict[str, Any], now: datetime, change: Commit, identity: dict[str, Any]
) -> dict[str, Any]:
    """What one commit writes into the document as read, the lease aside: each top-level
    field whole (the checkpoint moved by `core.commit.advance`, the counters added to)."""
    progress, summary = change.progress, change.summary
    update: dict[str, Any] = {"updated_at": now, **identity}
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
                update["replay"] = {"from": progress.replay.start, "to": progress.replay.end}
            update.update(
                next_block=moved.next_block,
                checkpoint_block_hash=moved.block_hash,
                recent_blocks=[recent_text(r) for r in moved.recent],
            )
            if change.children is not None and change.children.to_block == moved.next_block:
                update["children"] = {
                    "count": len(change.children.children),
                    "to_block": change.children.to_block,
                }
    written = change.children
    if written is not None and written.scan and "children" not in update:
        # A look below the checkpoint, stored as it goes: never past the checkpoint.
        stored = doc.get("next_block")
        if stored is None or written.to_block <= int(stored):
            update["children"] = {"count": len(written.children), "to_block": written.to_block}
    if change.looked_at is not None:
        update["last_look_at"] = change.looked_at
    if change.rpc_limits is not None:
        update["rpc_limits"] = [{"host": h, "blocks": n} for h, n in change.rpc_limits.items()]
    if (density := change.density) is not None:
        update["density"] = {
            "to_block": density.end,
            "blocks": density.blocks,
            "events": density.events,
            "watched": density.watched,
        }
    if summary is not None:
        totals = totals.counting(summary.outcome)
        update.update(_finish_fields(doc, update, summary))
    update["totals"] = asdict(totals)
    return update
