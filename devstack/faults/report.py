"""What a fault campaign reports: each trial's Result, the text table per scenario, the
JSON of artifacts/faults.json, and the lines printed as trials finish.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.faults.verdict import VIOLATIONS

COLUMNS = (
    ("trials", "trials"), ("runs", "runs"), ("kills", "kills"), ("lost", "lost"),
    ("dup_events", "dup"), ("dup_after_kill", "dup:kill"), ("dup_after_failure", "dup:fail"),
    ("dup_after_stall", "dup:stall"), ("double_published", "dbl-pub"), ("replayed", "replay"),
    ("window_exceeded", "window"), ("regressions", "regress"), ("wrong_data", "data"),
    ("retracted", "retr"), ("unretracted", "unretr"), ("retracted_wrong", "retr:bad"),
    ("stale_writes", "stale-wr"), ("unclear", "unclear"),
    ("status_wrong", "status"), ("other", "other"), ("outcome_failed", "failed"),
    ("failed_lock", "fail:lock"),
)  # fmt: skip
OTHER = [v for v in VIOLATIONS if v not in {k for k, _ in COLUMNS}]


@dataclass
class Result:
    """One trial's verdict."""

    scenario: str
    seed: int
    seconds: float
    figures: Counter[str]
    findings: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # errors of failed runs, normalised


def run_line(proc: Any) -> str:
    """One line per run for the JSON: tag, exit, outcome, seconds, crash point, error."""
    summary = (proc.summaries() or [{}])[0]
    point = next((e["point"] for e in proc.journal() if e["what"] == "point"), "")
    took = (proc.ended or 0) - proc.spawned
    error = (summary.get("error") or summary.get("message") or "")[:160]
    return f"{proc.tag} exit {proc.code} {summary.get('outcome', '-')} {took:.1f}s {point} {error}"


def normalise(error: str) -> str:
    """An error with its numbers and hashes blanked, so that alike failures count together."""
    error = re.sub(r"0x[0-9a-fA-F]+|\b[0-9a-f]{16}\b", "…", error)
    return re.sub(r"\d+(\.\d+)?", "N", error)[:140]


def progress(result: Result) -> None:
    """One line per finished trial, and its first findings."""
    broken = sum(result.figures[v] for v in VIOLATIONS) + result.figures["trial_errors"]
    mark = "BROKEN" if broken else "ok"
    print(f"  {result.scenario:<24} {result.seconds:>5.1f} s  kills {result.figures['kills']:>2}"
          f"  {mark}", flush=True)  # fmt: skip
    for finding in result.findings[:5]:
        print(f"      {finding[:400]}", flush=True)


def sum_figures(results: list[Result], order: list[str]) -> dict[str, Counter[str]]:
    """Figures summed per scenario (in `order`) and in total."""
    out: dict[str, Counter[str]] = {}
    for r in sorted(results, key=lambda r: order.index(r.scenario)):
        out.setdefault(r.scenario, Counter()).update(r.figures)
    out["TOTAL"] = sum(out.values(), Counter())
    for figures in out.values():
        figures["other"] = sum(figures[v] for v in OTHER) + figures["trial_errors"]
    return out


def figures_table(results: list[Result], order: list[str]) -> str:
    """A text table: one line per scenario and the total, the COLUMNS figures."""
    sums = sum_figures(results, order)
    width = max(len(s) for s in sums) + 1
    widths = [max(len(h), 5) + 1 for _, h in COLUMNS]
    header = "".join(f"{h:>{w}}" for (_, h), w in zip(COLUMNS, widths, strict=True))
    lines = ["scenario".ljust(width) + header]
    for scenario, figures in sums.items():
        if scenario == "TOTAL":
            lines.append("-" * len(lines[0]))
        cells = "".join(f"{figures[k]:>{w}}" for (k, _), w in zip(COLUMNS, widths, strict=True))
        lines.append(scenario.ljust(width) + cells)
    return "\n".join(lines)


def write_report(
    results: list[Result], order: list[str], seconds: float, path: Path
) -> dict[str, Any]:
    """Write the campaign's JSON (figures, failed runs' errors, every trial); its body."""
    sums = sum_figures(results, order)
    body = {
        "seconds": round(seconds, 1),
        "violations": {v: sums["TOTAL"][v] for v in (*VIOLATIONS, "trial_errors")},
        "scenarios": {s: dict(f) for s, f in sums.items()},
        "failed_run_errors": Counter(e for r in results for e in r.failures).most_common(),
        "trials": [
            {"scenario": r.scenario, "seed": r.seed, "seconds": r.seconds,
             "settings": r.settings, "figures": dict(r.figures), "findings": r.findings}
            for r in results
        ],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1, default=str))
    return body
