"""What the status page says of a relayer beyond its figures: each run's outcome, the lease,
the last run, the endpoints and the reorganisations, as short HTML fragments (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any

from function.ops.status_charts import duration, when

SYMBOL = {"ok": "✓", "idle": "•", "skipped": "↷", "failed": "✗"}


def iso(at: datetime) -> str:
    """An instant as RFC 3339 in UTC, escaped for an attribute."""
    return escape(at.isoformat().replace("+00:00", "Z"))


def ago(value: Any, now: datetime) -> str:
    """`<time>` with the relative age (or wait) as text and the exact instant in the tooltip."""
    at = when(value) if value is not None else None
    if at is None:
        return escape(str(value or "never"))
    seconds = (now - at).total_seconds()
    text = f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"
    return f'<time datetime="{iso(at)}" title="{iso(at)}">{text}</time>'


def code(value: Any) -> str:
    """An identifier (run id, host, address) in monospace, escaped."""
    return f"<code>{escape(str(value))}</code>"


def blocks(run: Mapping[str, Any]) -> str:
    """A run's blocks, `40–45`, or a dash for a run that relayed none."""
    lo, hi = run.get("from_block"), run.get("to_block")
    if lo is None or hi is None:
        return "—"
    return f"{lo}–{hi}" if lo != hi else str(lo)


def outcome(run: Mapping[str, Any]) -> str:
    """A run's outcome with its symbol, so it reads without the colour."""
    o = str(run.get("outcome") or "?")
    return f'<span class="{escape(o)}">{SYMBOL.get(o, "?")} {escape(o)}</span>'


def lease(r: Mapping[str, Any], now: datetime) -> str:
    """Who holds the lease and until when; one that expired unreleased says so."""
    held = r.get("lease") or {}
    owner = held.get("owner")
    if not owner:
        return "free (no run in progress)" if held else "—"
    since = f", since {ago(held.get('since'), now)}" if held.get("since") else ""
    if not held.get("held"):
        return (
            f"expired {ago(held.get('expires_at'), now)}: run {code(owner)} did not release "
            "it (a crash or a kill); the next run takes it"
        )
    text = f"run {code(owner)}{since}, expires {ago(held.get('expires_at'), now)}"
    until = when(held.get("follow_until"))
    if until is not None and until > now:
        text += f"; follows the chain for {duration((until - now).total_seconds())} more"
    return text


def last_run(r: Mapping[str, Any], now: datetime) -> str:
    """The last run's outcome, id (and Cloud Run execution, when the state keeps it), end."""
    last = r.get("last_run") or {}
    if not last:
        return "none"
    parts = [outcome(last), f"run {code(last.get('run_id') or '—')}"]
    if last.get("execution"):
        parts.append(f"execution {code(last['execution'])}")
    if last.get("finished_at"):
        parts.append(f"finished {ago(last['finished_at'], now)}")
    return " · ".join(parts)


def rpc(r: Mapping[str, Any]) -> tuple[str, str]:
    """The endpoints by host in failover order, and the log spans learned per host."""
    hosts = [str(h) for h in r.get("rpc_hosts") or []]
    if not hosts:
        shown = "—"
    else:
        shown = code(hosts[0]) + " (every run starts here)"
        if len(hosts) > 1:
            shown += "; fails over to " + ", ".join(code(h) for h in hosts[1:])
    spans = [
        f"{code(e.get('host'))} ≤ {int(e.get('blocks') or 0):,} blocks"
        for e in r.get("rpc_limits") or []
    ]
    return shown, "; ".join(spans) or "none (every endpoint took whole batches)"


def reorgs(r: Mapping[str, Any], now: datetime) -> str:
    """The reorganisations the kept runs saw, newest first, and the retractions in all."""
    found = list(r.get("reorgs") or [])
    retracted = int((r.get("totals") or {}).get("events_retracted") or 0)
    total = f"{retracted:,} events retracted in all"
    if not found:
        return f"none in the runs kept · {total}"
    items = []
    for g in found:
        what = []
        if g.get("depth"):
            what.append(f"{g['depth']} blocks deep, back to block {g.get('ancestor')}")
        if g.get("orphaned_above_checkpoint"):
            blocks = ", ".join(str(b) for b in g["orphaned_above_checkpoint"][:5])
            what.append(f"blocks {blocks} replaced above the checkpoint")
        what.append(f"{g.get('retracted', 0)} retracted")
        items.append(
            f"<li>{ago(g.get('at'), now)}, run {code(g.get('run_id'))}: "
            f"{escape(', '.join(what))}</li>"
        )
    return f'<ul class="plain">{"".join(items)}</ul>{total}'
