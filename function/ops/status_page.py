"""The page a person reads at `GET /` of the status function.

Pure: the `/status` body and the clock in, one self-contained HTML document out (inline CSS,
inline SVG drawn here, no script, no external asset), so it works offline and behind IAM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

RUNS_SHOWN = 10  # rows of the last-runs table; the charts show every stored run
CHART_SLOTS = 12  # a chart is at least this many bars wide, so a few runs make thin bars
SYMBOL = {"ok": "✓", "idle": "•", "skipped": "↷", "failed": "✗"}

CSS = """
:root{--ok:#1a7f37;--bad:#c62828;--dim:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1f2328;background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:12px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:0;overflow-wrap:anywhere}
h3{font-size:1em;margin:1em 0 .4em}
.summary{padding:10px 12px;border-radius:8px;font-weight:600;color:#fff}
.summary.ok{background:var(--ok)}.summary.bad{background:var(--bad)}
.updated{color:var(--dim);font-size:.85em}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px;margin:12px 0}
.card.bad{border-left:6px solid var(--bad)}.card.ok{border-left:6px solid var(--ok)}
.head{display:flex;flex-wrap:wrap;gap:8px;align-items:center;justify-content:space-between}
.badge{padding:2px 10px;border-radius:999px;font-weight:700;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}
.reasons{margin:8px 0;padding:8px 8px 8px 28px;background:#ffebe9;border-radius:6px}
.stats{display:flex;flex-wrap:wrap;gap:8px}
.stats div{flex:1 1 150px;background:var(--bg);border-radius:6px;padding:6px 10px}
.stats dt{font-size:.8em}.stats dd{font-size:1.15em;font-weight:700}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));
 gap:0 24px}
dl{margin:8px 0}.grid div{display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 12px;
 border-bottom:1px solid var(--bg);padding:3px 0}
dt{color:var(--dim)}dd{margin:0;overflow-wrap:anywhere}.grid dd{margin-left:auto;text-align:right}
code{font:.85em ui-monospace,Menlo,Consolas,monospace}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:0 16px}
figure{margin:0 0 8px}figcaption{font-size:.85em;color:var(--dim)}
svg{display:block;width:100%;height:80px;background:var(--bg);border-radius:4px}
.axis{display:flex;justify-content:space-between;font-size:.75em;color:var(--dim)}
.bar{fill:#0969da}.bar.failed{fill:var(--bad)}.bar.skipped,.bar.idle{fill:#8c959f}
.bar.none{fill:#ffd3cf}.legend{font-size:.8em;color:var(--dim);margin:4px 0}
.sw{display:inline-block;width:.8em;height:.8em;margin:0 3px 0 8px;background:#0969da}
.sw.idle{background:#8c959f}.sw.failed{background:var(--bad)}.sw.none{background:#ffd3cf}
caption{text-align:left;font-weight:600;padding:8px 0 4px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:top}
td.n,th.n{text-align:right}.failed{color:var(--bad);font-weight:600}
td.err{color:var(--bad);font-size:.85em;overflow-wrap:anywhere;padding-top:0}
@media (max-width:600px){.hide-narrow{display:none}main{padding:8px}
 .stats div:first-child{flex-basis:100%}}
"""
LEGEND = (
    '<p class="legend">Bars: <i class="sw"></i>ok <i class="sw idle"></i>idle or skipped '
    '<i class="sw failed"></i>failed <i class="sw none"></i>lag unknown</p>'
)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def duration(seconds: float) -> str:
    """A span as a person says it: `45 s`, `3 min`, `2 h 5 min`, `3 d 4 h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _ago(value: Any, now: datetime) -> str:
    """`<time>` with the relative age as text and the exact instant in the tooltip."""
    at = _when(value)
    if value is None or at is None or at.tzinfo is None:
        return escape(str(value or "never"))
    iso = escape(at.isoformat().replace("+00:00", "Z"))
    return f'<time datetime="{iso}" title="{iso}">{duration((now - at).total_seconds())} ago</time>'


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


def _blocks(run: Mapping[str, Any]) -> str:
    lo, hi = run.get("from_block"), run.get("to_block")
    if lo is None or hi is None:
        return "—"
    return f"{lo}–{hi}" if lo != hi else str(lo)


def _outcome(run: Mapping[str, Any]) -> str:
    o = str(run.get("outcome") or "?")
    return f'<span class="{escape(o)}">{SYMBOL.get(o, "?")} {escape(o)}</span>'


def chart(runs: Sequence[Mapping[str, Any]], key: str, title: str) -> str:
    """Bars of `key` per run, newest at the right; each bar's tooltip tells its run."""
    values = [v if isinstance(v := r.get(key), int | float) else None for r in runs]
    top = max([int(v) for v in values if v is not None] + [1])
    slots, height = max(len(runs), CHART_SLOTS), 100
    bars = []
    for i, (run, v) in enumerate(zip(runs, values, strict=True), start=slots - len(runs)):
        h = max(2.0, height * v / top) if v is not None else height
        css = escape(str(run.get("outcome") or "")) if v is not None else "none"
        shown = "unknown" if v is None else v
        tip = f"{run.get('started_at')}: {run.get('outcome')}, {key.replace('_', ' ')} {shown}"
        bars.append(
            f'<rect class="bar {css}" x="{i * 10 + 1}" y="{height - h:.1f}" width="8" '
            f'height="{h:.1f}"><title>{escape(tip)}</title></rect>'
        )
    label = f"{title} for the last {len(runs)} runs, oldest first; highest {top}"
    return (
        f"<figure><figcaption>{escape(title)} · highest {top}</figcaption>"
        f'<svg role="img" aria-label="{escape(label)}" viewBox="0 0 {slots * 10} {height}" '
        f'preserveAspectRatio="none">{"".join(bars)}</svg>'
        '<div class="axis" aria-hidden="true"><span>older</span><span>latest run</span></div>'
        "</figure>"
    )


def _runs_table(runs: Sequence[Mapping[str, Any]], now: datetime) -> str:
    rows = []
    for run in reversed(runs[-RUNS_SHOWN:]):
        took = run.get("duration_s")
        rows.append(
            f"<tr><td>{_ago(run.get('started_at'), now)}</td><td>{_outcome(run)}</td>"
            f'<td class="n">{escape(str(run.get("events_published", 0)))}</td>'
            f'<td class="n">{f"{took:.1f} s" if isinstance(took, int | float) else "—"}</td>'
            f'<td class="n hide-narrow">{escape(_blocks(run))}</td></tr>'
        )
        if run.get("error"):
            rows.append(f'<tr><td class="err" colspan="5">{escape(str(run["error"]))}</td></tr>')
    return (
        '<div class="scroll"><table><caption>Last runs, newest first</caption><thead><tr>'
        '<th scope="col">Started</th><th scope="col">Outcome</th><th scope="col" class="n">'
        'Events</th><th scope="col" class="n">Duration</th>'
        '<th scope="col" class="n hide-narrow">Blocks</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _card(r: Mapping[str, Any], index: int, now: datetime) -> str:
    ok = bool(r.get("healthy"))
    state = "ok" if ok else "bad"
    rid = escape(str(r.get("relayer_id")))
    reasons = "".join(f"<li>{escape(str(x))}</li>" for x in r.get("reasons") or [])
    totals = r.get("totals") or {}
    outcomes = totals.get("outcomes") or {}
    counts = ", ".join(f"{n} {escape(str(o))}" for o, n in outcomes.items() if n)
    contracts = "<br>".join(f"<code>{escape(str(c))}</code>" for c in r.get("contracts") or [])
    head = r.get("head_block")
    retracted = escape(str(totals.get("events_retracted", 0)))
    dead = escape(str(totals.get("events_deadlettered", 0)))
    stats = [
        _row("Lag", escape(lag_text(r.get("lag_blocks"), r.get("lag_seconds")))),
        _row("Last success", _ago(r.get("last_success_at"), now)),
        _row("Events published", escape(str(totals.get("events_published", 0)))),
    ]
    facts = [
        _row("Chain", escape(str(r.get("chain_id")))),
        _row("Contracts" if len(r.get("contracts") or []) > 1 else "Contract", contracts),
        _row("Topic", f"<code>{escape(str(r.get('topic') or '—'))}</code>"),
        _row("Next block", escape(str(r.get("next_block")))),
        _row("Head block", escape(str(head)) if head is not None else "unavailable"),
        _row("Retracted · dead-lettered", f"{retracted} · {dead}"),
        _row("Runs", f"{escape(str(totals.get('runs', 0)))}" + (f" ({counts})" if counts else "")),
    ]
    runs = list(r.get("recent_runs") or [])
    history = (
        '<div class="charts">'
        + chart(runs, "events_published", "Events published per run")
        + chart(runs, "lag_blocks", "Lag in blocks after each run")
        + "</div>"
        + LEGEND
        + _runs_table(runs, now)
        if runs
        else "<p>No runs yet.</p>"
    )
    return (
        f'<section class="card {state}" aria-labelledby="relayer-{index}">'
        f'<div class="head"><h2 id="relayer-{index}">{rid}</h2>'
        f'<span class="badge {state}">{"✓ healthy" if ok else "✗ unhealthy"}</span></div>'
        + (f'<ul class="reasons" aria-label="Why unhealthy">{reasons}</ul>' if reasons else "")
        + f'<dl class="stats">{"".join(stats)}</dl><dl class="grid">{"".join(facts)}</dl>'
        + f"<h3>Recent runs</h3>{history}</section>"
    )


def render(body: Mapping[str, Any], now: datetime) -> str:
    """The whole status page for the `/status` body `body`, as seen at `now` (UTC-aware)."""
    relayers = list(body.get("relayers") or [])
    bad = sum(1 for r in relayers if not r.get("healthy"))
    state = "ok" if body.get("healthy") and not bad else "bad"
    if len(relayers) == 1:
        banner = "✓ Relayer healthy" if state == "ok" else "✗ Relayer unhealthy"
    elif state == "ok":
        banner = f"✓ All {len(relayers)} relayers healthy"
    else:
        banner = f"✗ {bad} of {len(relayers)} relayers unhealthy"
    cards = "".join(_card(r, i, now) for i, r in enumerate(relayers))
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="refresh" content="30">'
        f"<title>{'OK' if state == 'ok' else 'UNHEALTHY'} · Relayer status</title>"
        f"<style>{CSS}</style></head><body><main><h1>Relayer status</h1>"
        f'<p class="summary {state}" role="status">{escape(banner)}</p>'
        f'<p class="updated">Updated {stamp}; refreshes every 30 s. '
        'Also: <a href="status">JSON</a> · <a href="metrics">metrics</a></p>'
        f"{cards or '<p>No relayer is configured.</p>'}</main></body></html>"
    )
