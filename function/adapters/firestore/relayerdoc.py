"""The relayer document's fields (docs/CONTRACT.md §4) to and from the core's types (pure).

A grant is built from the document as read; a commit's fields from the document as read and
the core's decisions (`core.commit`). The state adapter writes them conditioned on that read,
so what is written here was decided on the document as it still is.
"""

from __future__ import annotations

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


def _refs(raw: Any) -> tuple[BlockRef, ...]:
    return tuple(_ref(r) for r in raw or [])


def _ref(entry: Any) -> BlockRef:
    """A kept block: `"{number}:{hash}"`, or the map `{number, hash}` earlier writers left
    (read the same; the next commit rewrites the list as texts)."""
    if isinstance(entry, str):
        number, colon, block_hash = entry.partition(":")
        if colon and number.isdigit() and block_hash and ":" not in block_hash:
            return BlockRef(int(number), block_hash)
    elif isinstance(entry, dict) and {"number", "hash"} <= entry.keys():
        return BlockRef(int(entry["number"]), str(entry["hash"]))
    raise StateError(
        f'the relayer document\'s recent_blocks holds {entry!r}, neither "<number>:<hash>" '
        "nor {number, hash}: restore the document from a backup, or delete the field (the "
        "reorganisation check then starts again from the block records)"
    )


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
