"""The page a person reads at `GET /` of the status function: the first page on call.

Pure: the `/status` body and the clock in, one self-contained HTML document out (inline CSS,
inline SVG, no script, no external asset), so it works offline and behind IAM. The banner
names every unhealthy relayer with its reasons; their cards come first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from function.ops.status_charts import axis, chart, duration, gaps_text
from function.ops.status_facts import ago, blocks, code, last_run, lease, outcome, reorgs, rpc
from function.ops.status_style import CSS, LEGEND

__all__ = ["duration", "lag_text", "render"]

RUNS_SHOWN = 10  # rows of the last-runs table; the charts show every stored run
FOLD_AFTER = 4  # in a larger fleet the healthy relayers' cards start folded


def lag_text(blocks: int | None, seconds: float | None) -> str:
    """Lag in blocks and in time, e.g. `12 blocks · 3 min behind`."""
    if blocks is None:
        return "unknown (chain head unavailable)"
    if blocks == 0:
        return "0 blocks · caught up"
    unit = "block" if blocks == 1 else "blocks"
    behind = f"{duration(seconds)} behind" if seconds is not None else "time unknown"
    return f"{blocks} {unit} · {behind}"


def _row(label: str, value: str) -> str:
    return f"<div><dt>{escape(label)}</dt><dd>{value}</dd></div>"


def _runs_table(runs: Sequence[Mapping[str, Any]], now: datetime) -> str:
    rows = []
    for run in reversed(runs[-RUNS_SHOWN:]):
        took = run.get("duration_s")
        rows.append(
            f"<tr><td>{ago(run.get('started_at'), now)}</td><td>{outcome(run)}</td>"
            f'<td class="n">{escape(str(run.get("events_published", 0)))}</td>'
            f'<td class="n">{f"{took:.1f} s" if isinstance(took, int | float) else "—"}</td>'
            f'<td class="n hide-narrow">{escape(blocks(run))}</td>'
            f'<td class="hide-narrow">{code(run.get("run_id") or "—")}</td></tr>'
        )
        if run.get("error"):
            rows.append(f'<tr><td class="err" colspan="6">{escape(str(run["error"]))}</td></tr>')
    return (
        '<div class="scroll"><table><caption>Last runs, newest first</caption><thead><tr>'
        '<th scope="col">Started</th><th scope="col">Outcome</th><th scope="col" class="n">'
        'Events</th><th scope="col" class="n">Duration</th>'
        '<th scope="col" class="n hide-narrow">Blocks</th>'
        '<th scope="col" class="hide-narrow">Run</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _history(r: Mapping[str, Any], now: datetime) -> str:
    runs = list(r.get("recent_runs") or [])
    if not runs:
        return "<p>No runs yet.</p>"
    ax = axis(runs, now, r.get("poll_interval_s"))
    confirmations = r.get("confirmations")
    level = float(confirmations) if isinstance(confirmations, int) and confirmations else None
    limit = r.get("max_lag_blocks")
    return (
        '<div class="charts">'
        + chart(
            runs,
            "lag_blocks",
            ax,
            title="Lag after each run",
            unit="blocks",
            level=level,
            level_text=f"{confirmations} confirmations: normal",
            limit=float(limit) if isinstance(limit, int) else None,
            reorganised={g.get("run_id") for g in r.get("reorgs") or []},
        )
        + chart(runs, "events_published", ax, title="Events published", unit="events")
        + chart(runs, "duration_s", ax, title="Run duration", unit="seconds", whole=False)
        + "</div>"
        + LEGEND
        + gaps_text(ax)
        + _runs_table(runs, now)
    )


def _misconfigured_card(r: Mapping[str, Any], index: int) -> str:
    """A relayer of RELAYER_CONFIG that cannot run: what is wrong with its entry, no figures
    (nothing was read for it)."""
    reasons = "".join(f"<li>{escape(str(x))}</li>" for x in r.get("reasons") or [])
    return (
        f'<section class="card bad" aria-labelledby="relayer-{index}"><div class="head">'
        f'<h2 id="relayer-{index}">{escape(str(r.get("relayer_id")))}</h2>'
        '<span class="badge bad">✗ not running</span></div>'
        f'<ul class="reasons" aria-label="Why unhealthy">{reasons}</ul>'
        "<p>This entry of RELAYER_CONFIG cannot run until its configuration is fixed: the job "
        "refuses to start while it is broken, and nothing is read for it here.</p></section>"
    )


def _card(r: Mapping[str, Any], index: int, now: datetime, folded: bool) -> str:
    if r.get("configured") is False:
        return _misconfigured_card(r, index)
    ok = bool(r.get("healthy"))
    state = "ok" if ok else "bad"
    rid = escape(str(r.get("relayer_id")))
    reasons = "".join(f"<li>{escape(str(x))}</li>" for x in r.get("reasons") or [])
    totals = r.get("totals") or {}
    outcomes = totals.get("outcomes") or {}
    counts = ", ".join(f"{n} {escape(str(o))}" for o, n in outcomes.items() if n)
    contracts = "<br>".join(code(c) for c in r.get("contracts") or [])
    head = r.get("head_block")
    limit = r.get("max_lag_blocks")
    lag = escape(lag_text(r.get("lag_blocks"), r.get("lag_seconds")))
    if isinstance(limit, int):
        lag += f' <span class="cap">(limit {limit})</span>'
    stats = [
        _row("Lag", lag),
        _row("Last look at the chain", ago(r.get("last_look_at"), now)),
        _row("Last success", ago(r.get("last_success_at"), now)),
        _row("Events published", escape(str(totals.get("events_published", 0)))),
    ]
    endpoints, spans = rpc(r)
    now_facts = [
        _row("Lease", lease(r, now)),
        _row("Last run", last_run(r, now)),
        _row("RPC endpoint", endpoints),
        _row("Learned log spans", spans),
        _row("Reorganisations", reorgs(r, now)),
    ]
    retracted = escape(str(totals.get("events_retracted", 0)))
    dead = escape(str(totals.get("events_deadlettered", 0)))
    facts = [
        _row("Chain", escape(str(r.get("chain_id")))),
        _row("Contracts" if len(r.get("contracts") or []) > 1 else "Contract", contracts),
        _row("Topic", code(r.get("topic") or "—")),
        _row("Next block", escape(str(r.get("next_block")))),
        _row("Head block", escape(str(head)) if head is not None else "unavailable"),
        _row("Confirmations · head", escape(f"{r.get('confirmations', '—')} · {r.get('head')}")),
        _row("Retracted · dead-lettered", f"{retracted} · {dead}"),
        _row("Runs", f"{escape(str(totals.get('runs', 0)))}" + (f" ({counts})" if counts else "")),
    ]
    head_html = (
        f'<h2 id="relayer-{index}">{rid}</h2>'
        f'<span class="badge {state}">{"✓ healthy" if ok else "✗ unhealthy"}</span>'
    )
    body = (
        (f'<ul class="reasons" aria-label="Why unhealthy">{reasons}</ul>' if reasons else "")
        + f'<dl class="stats">{"".join(stats)}</dl>'
        + f'<dl class="grid now">{"".join(now_facts)}</dl>'
        + f'<dl class="grid">{"".join(facts)}</dl>'
        + f"<h3>Recent runs</h3>{_history(r, now)}"
    )
    if folded:
        return (
            f'<details class="card {state}" aria-labelledby="relayer-{index}">'
            f'<summary class="head">{head_html}<span class="brief">{lag}</span></summary>'
            f"{body}</details>"
        )
    return (
        f'<section class="card {state}" aria-labelledby="relayer-{index}">'
        f'<div class="head">{head_html}</div>{body}</section>'
    )


def _banner(ordered: Sequence[Mapping[str, Any]], healthy: bool) -> str:
    """What is wrong, first: each unhealthy relayer by name with its reasons."""
    bad = [(i, r) for i, r in enumerate(ordered) if not r.get("healthy")]
    n = len(ordered)
    if healthy and not bad:
        title = "✓ Relayer healthy" if n == 1 else f"✓ All {n} relayers healthy"
        return f'<div class="summary ok" role="status"><p class="title">{title}</p></div>'
    title = "✗ Relayer unhealthy" if n == 1 else f"✗ {len(bad)} of {n} relayers unhealthy"
    items = "".join(
        f'<li><a href="#relayer-{i}">{escape(str(r.get("relayer_id")))}</a>: '
        f"{escape('; '.join(str(x) for x in r.get('reasons') or []) or 'unhealthy')}</li>"
        for i, r in bad
    )
    fine = [escape(str(r.get("relayer_id"))) for r in ordered if r.get("healthy")]
    rest = f'<p class="rest">Healthy: {", ".join(fine)}</p>' if fine else ""
    return (
        f'<div class="summary bad" role="status"><p class="title">{escape(title)}</p>'
        f'<ol class="culprits">{items}</ol>{rest}</div>'
    )


def _urgency(r: Mapping[str, Any]) -> int:
    """Sort key: relayers that stopped (failed, stale, unreadable) before those that only
    lag (they still relay), then the healthy; the deployment's order within each."""
    if r.get("healthy"):
        return 2
    reasons = [str(x) for x in r.get("reasons") or []]
    return 1 if reasons and all(x.startswith("lagging:") for x in reasons) else 0


def render(body: Mapping[str, Any], now: datetime) -> str:
    """The whole status page for the `/status` body `body`, as seen at `now` (UTC-aware)."""
    relayers = list(body.get("relayers") or [])
    ordered = sorted(relayers, key=_urgency)
    bad = sum(1 for r in ordered if not r.get("healthy"))
    state = "ok" if body.get("healthy") and not bad else "bad"
    fold = len(ordered) > FOLD_AFTER
    cards = "".join(
        _card(r, i, now, folded=fold and bool(r.get("healthy"))) for i, r in enumerate(ordered)
    )
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    title = "OK" if state == "ok" else f"UNHEALTHY ({bad})"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="refresh" content="30">'
        f"<title>{title} · Relayer status</title>"
        f"<style>{CSS}</style></head><body><main><h1>Relayer status</h1>"
        f"{_banner(ordered, state == 'ok')}"
        f'<p class="updated">Updated {stamp}; refreshes every 30 s. Times on the charts are '
        'UTC. Also: <a href="status">JSON</a> · <a href="metrics">metrics</a></p>'
        f"{cards or '<p>No relayer is configured.</p>'}</main></body></html>"
    )
