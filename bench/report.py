"""Rates, ratios and targets from the phases' measurements; the tables and results.json.

All rates come from medians. The floor of each network is its faster publish path (by
median process wall; see bench/phases.py). `peak_rss_100k_mb` is the one run over the
100,000-event chain; `peak_rss_mb` the largest of the 20,000-event end-to-end runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.follow_report import follow_rows, follow_targets

PATH_NAMES = {"requests": "raw requests", "batching": "client batching"}


def _rate(amount: float, seconds: float) -> float:
    return amount / max(seconds, 1e-6)


def _med(phase: dict[str, Any], key: str) -> float:
    return float(phase[key]["median"])


def _end_to_end(busy: dict[str, Any], label: str, suffix: str) -> dict[str, Any]:
    """One network's headline figures, keys ending in `suffix`."""
    n = busy["events"]
    net = busy["networks"][label]
    path = net["floor_path"]
    floor, relayer = net["floor"][path], net["relayer"]
    r: dict[str, Any] = {
        f"floor{suffix}_publish_path": path,
        f"floor{suffix}_events_per_s": _rate(n, _med(floor, "wall_s")),
        f"floor{suffix}_work_events_per_s": _rate(n, _med(floor, "work_s")),
        f"relayer{suffix}_events_per_s": _rate(n, _med(relayer, "wall_s")),
        f"relayer{suffix}_run_events_per_s": _rate(n, _med(relayer, "run_duration_s")),
    }
    for p, runs in net["floor"].items():
        r[f"floor{suffix}_{p}_events_per_s"] = _rate(n, _med(runs, "wall_s"))
    for p, wall in net["floor_first_wall_s"].items():
        r[f"floor{suffix}_{p}_first_events_per_s"] = _rate(n, wall)
    r[f"relayer_to_floor{suffix}"] = (
        r[f"relayer{suffix}_events_per_s"] / r[f"floor{suffix}_events_per_s"]
    )
    r[f"relayer_to_floor{suffix}_in_process"] = (
        r[f"relayer{suffix}_run_events_per_s"] / r[f"floor{suffix}_work_events_per_s"]
    )
    if guarded := net.get("guarded"):  # the floor with the least guard (bench/guarded.py)
        r[f"guarded{suffix}_events_per_s"] = _rate(n, _med(guarded, "wall_s"))
        r[f"guarded_to_floor{suffix}"] = (
            r[f"guarded{suffix}_events_per_s"] / r[f"floor{suffix}_events_per_s"]
        )
        r[f"relayer_to_guarded{suffix}"] = (
            r[f"relayer{suffix}_events_per_s"] / r[f"guarded{suffix}_events_per_s"]
        )
    return r


def rates(
    busy: dict[str, Any],
    naive: dict[str, Any],
    empty: dict[str, Any],
    rss: dict[str, Any],
) -> dict[str, Any]:
    """The headline numbers (results.json's top-level keys)."""
    n = busy["events"]
    one = empty["one_run"]
    blocks = empty["blocks"]
    local = busy["networks"]["local"]
    floor_local = local["floor"][local["floor_path"]]
    r: dict[str, Any] = {
        **_end_to_end(busy, "local", ""),
        "naive_events_per_s": _rate(naive["events"], _med(naive, "seconds")),
        "raw_empty_blocks_per_s": _rate(blocks, _med(one, "raw_s")),
        "relayer_empty_cold_blocks_per_s": _rate(blocks, _med(one, "relayer_scan_s")),
        "relayer_empty_run_blocks_per_s": _rate(blocks, _med(one, "relayer_run_duration_s")),
        "relayer_empty_wall_blocks_per_s": _rate(blocks, _med(one, "relayer_wall_s")),
        "idle_run_s": _med(busy["idle"], "wall_s"),
        "idle_run_duration_s": _med(busy["idle"], "run_duration_s"),
        "idle_run_cpu_s": _med(busy["idle"], "cpu_s"),
        "relayer_cpu_s_per_1000_events": _med(local["relayer"], "cpu_s") * 1000 / n,
        "floor_cpu_s_per_1000_events": _med(floor_local, "cpu_s") * 1000 / n,
        "peak_rss_100k_mb": float(rss["peak_rss_mb"]),
        "rss_100k_events": rss["events"],
        "rss_100k_wall_s": float(rss["wall_s"]),
        "rss_100k_cpu_s": float(rss["cpu_s"]),
        "floor_peak_rss_100k_mb": float(rss["floor_peak_rss_mb"]),
        "peak_rss_mb": float(local["relayer"]["peak_rss_mb"]["max"]),
        "floor_peak_rss_mb": float(floor_local["peak_rss_mb"]["max"]),
    }
    # The target's scan: a relayer in service (its past relayed, so its first window starts
    # from the density learnt), when measured; a relayer without a past otherwise.
    r["relayer_empty_blocks_per_s"] = r["relayer_empty_cold_blocks_per_s"]
    r["relayer_empty_relayer"] = "cold"
    if warm := one.get("warm"):
        r["relayer_empty_warm_blocks_per_s"] = _rate(blocks, _med(warm, "relayer_scan_s"))
        r["relayer_empty_warm_run_blocks_per_s"] = _rate(
            blocks, _med(warm, "relayer_run_duration_s")
        )
        r["relayer_empty_history_blocks"] = warm["history"]
        r["relayer_empty_blocks_per_s"] = r["relayer_empty_warm_blocks_per_s"]
        r["relayer_empty_relayer"] = "warm"
    if many := empty.get("many_runs"):
        r["raw_empty_blocks_per_s_small_ranges"] = _rate(blocks, _med(many, "raw_s"))
        r["relayer_empty_run_blocks_per_s_small_batches"] = _rate(
            blocks, _med(many, "relayer_run_duration_s")
        )
        r["relayer_empty_wall_blocks_per_s_small_batches"] = _rate(
            blocks, _med(many, "relayer_wall_s")
        )
    if "delayed" in busy["networks"]:
        delayed = busy["networks"]["delayed"]
        r.update(_end_to_end(busy, "delayed", "_delayed"))
        r["delayed_rtt_ms"] = delayed["rtt_s"] * 1000
        r["delayed_setup_round_trips"] = delayed["setup_round_trips"]
    if guarded_local := local.get("guarded"):
        r["guarded_cpu_s_per_1000_events"] = _med(guarded_local, "cpu_s") * 1000 / n
        r["guarded_cpu_to_floor"] = (
            r["guarded_cpu_s_per_1000_events"] / r["floor_cpu_s_per_1000_events"]
        )
    r.update(
        relayer_to_naive=r["relayer_events_per_s"] / r["naive_events_per_s"],
        relayer_empty_to_raw=r["relayer_empty_blocks_per_s"] / r["raw_empty_blocks_per_s"],
        relayer_empty_cold_to_raw=r["relayer_empty_cold_blocks_per_s"]
        / r["raw_empty_blocks_per_s"],
        relayer_empty_run_to_raw=r["relayer_empty_run_blocks_per_s"] / r["raw_empty_blocks_per_s"],
        relayer_cpu_to_floor=r["relayer_cpu_s_per_1000_events"] / r["floor_cpu_s_per_1000_events"],
    )
    return r


@dataclass(frozen=True)
class Target:
    name: Callable[[dict[str, Any]], str]
    key: str
    holds: Callable[[float], bool]
    wanted: str
    shown: Callable[[dict[str, Any]], str]  # the measured value with what it came from


def _path(r: dict[str, Any], key: str) -> str:
    return PATH_NAMES.get(str(r.get(key)), str(r.get(key)))


def _empty_relayer(r: dict[str, Any]) -> str:
    if r.get("relayer_empty_relayer") != "warm":
        return "a relayer without a past"
    return (f"a relayer with {r['relayer_empty_history_blocks']:,} empty blocks relayed "
            f"before; without a past: {r['relayer_empty_cold_to_raw']:.2f}")  # fmt: skip


TARGETS = (
    Target(
        lambda r: "end to end, python main.py wall vs floor process wall, local",
        "relayer_to_floor", lambda v: v >= 0.8, ">= 0.8",
        lambda r: f"{r['relayer_to_floor']:.2f} ({r['relayer_events_per_s']:,.0f} vs "
        f"{r['floor_events_per_s']:,.0f} events/s, floor: {_path(r, 'floor_publish_path')})",
    ),
    Target(
        lambda r: f"end to end vs floor, {r.get('delayed_rtt_ms', 20):g} ms round trips injected",
        "relayer_to_floor_delayed", lambda v: v >= 0.8, ">= 0.8",
        lambda r: f"{r['relayer_to_floor_delayed']:.2f} ({r['relayer_delayed_events_per_s']:,.0f} "
        f"vs {r['floor_delayed_events_per_s']:,.0f} events/s, floor: "
        f"{_path(r, 'floor_delayed_publish_path')})",
    ),
    Target(
        lambda r: "relayer CPU seconds per 1,000 events vs the floor's",
        "relayer_cpu_to_floor", lambda v: v <= 1.5, "<= 1.5",
        lambda r: f"{r['relayer_cpu_to_floor']:.2f} ({r['relayer_cpu_s_per_1000_events']:.3f} "
        f"vs {r['floor_cpu_s_per_1000_events']:.3f} s)",
    ),
    Target(
        lambda r: "empty-block scan vs raw eth_getLogs loop",
        "relayer_empty_to_raw", lambda v: v >= 0.9, ">= 0.9",
        lambda r: f"{r['relayer_empty_to_raw']:.2f} ({r['relayer_empty_blocks_per_s']:,.0f} vs "
        f"{r['raw_empty_blocks_per_s']:,.0f} blocks/s, {_empty_relayer(r)})",
    ),
    Target(
        lambda r: "idle run (python main.py, nothing new) wall",
        "idle_run_s", lambda v: v <= 1.0, "<= 1.0 s",
        lambda r: f"{r['idle_run_s']:.2f} s (in-run {r['idle_run_duration_s']:.3f} s)",
    ),
    Target(
        lambda r: f"peak RSS, {r.get('rss_100k_events', 100_000):,} events in one batch",
        "peak_rss_100k_mb", lambda v: v <= 200, "<= 200 MB",
        lambda r: f"{r['peak_rss_100k_mb']:.0f} MB (the floor: "
        f"{r['floor_peak_rss_100k_mb']:.0f} MB)",
    ),
)  # fmt: skip


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The six targets of issue 13, in its order (a row whose figure is missing is left out:
    only a run without the delayed network lacks one)."""
    return [
        {"target": t.name(r), "key": t.key, "value": r[t.key], "wanted": t.wanted,
         "holds": t.holds(r[t.key]), "measured": t.shown(r)}
        for t in TARGETS
        if t.key in r
    ]  # fmt: skip


def targets_table(r: dict[str, Any]) -> str:
    """The targets, one row each: the measured value, the target, held or MISSED."""
    rows = [(t["target"], t["measured"], t["wanted"], "held" if t["holds"] else "MISSED")
            for t in r["targets"]]  # fmt: skip
    head = ("target", "measured (medians)", "target", "")
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(4)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in [head, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def table(r: dict[str, Any], details: dict[str, Any]) -> str:
    """Every measure, one row each, ratios beside the relayer's rows; then the targets."""
    ev, bl = "events/s", "blocks/s"
    one = details["empty"]["one_run"]
    many = details["empty"].get("many_runs")
    rows: list[tuple[str, float, str, str]] = []
    for suffix, where in (("", "local"), ("_delayed", "delayed")):
        if f"floor{suffix}_events_per_s" not in r:
            continue
        net = details["busy"]["networks"][where]
        for path in net["floor_first_wall_s"]:
            chosen = "the faster: the floor" if path == net["floor_path"] else ""
            rows.append((f"{where}: floor, {PATH_NAMES.get(path, path)}, 1st repetition",
                         r[f"floor{suffix}_{path}_first_events_per_s"], ev, chosen))  # fmt: skip
        chosen_path = net["floor_path"]
        runs = net["floor"][chosen_path]["runs"]
        rows += [
            (f"{where}: floor, {PATH_NAMES.get(chosen_path, chosen_path)}, median of {runs}",
             r[f"floor{suffix}_events_per_s"], ev, ""),
        ]  # fmt: skip
        if f"guarded{suffix}_events_per_s" in r:
            rows.append((f"{where}: guarded floor (the floor + the least guard)",
                         r[f"guarded{suffix}_events_per_s"], ev,
                         f"x{r[f'guarded_to_floor{suffix}']:.2f} floor: the ceiling"))  # fmt: skip
        rows += [
            (f"{where}: floor, in process (fetch+decode+publish)",
             r[f"floor{suffix}_work_events_per_s"], ev, ""),
            (f"{where}: relayer end to end (python main.py wall)",
             r[f"relayer{suffix}_events_per_s"], ev,
             f"x{r[f'relayer_to_floor{suffix}']:.2f} floor"),
            (f"{where}: relayer, in-run duration", r[f"relayer{suffix}_run_events_per_s"], ev,
             f"x{r[f'relayer_to_floor{suffix}_in_process']:.2f} floor in process"),
        ]  # fmt: skip
    rows += [
        ("relayer CPU per 1,000 events", r["relayer_cpu_s_per_1000_events"], "s",
         f"x{r['relayer_cpu_to_floor']:.2f} floor"),
        ("floor CPU per 1,000 events", r["floor_cpu_s_per_1000_events"], "s", ""),
    ]  # fmt: skip
    if "guarded_cpu_s_per_1000_events" in r:
        rows.append(("guarded floor CPU per 1,000 events", r["guarded_cpu_s_per_1000_events"],
                     "s", f"x{r['guarded_cpu_to_floor']:.2f} floor: the ceiling"))  # fmt: skip
    rows += [
        (f"naive relayer ({details['naive']['events']} events)", r["naive_events_per_s"], ev,
         f"relayer x{r['relayer_to_naive']:.1f}"),
        (f"raw eth_getLogs, {one['range_size']}-block ranges", r["raw_empty_blocks_per_s"], bl, ""),
        ("relayer scan (run minus idle run), no past", r["relayer_empty_cold_blocks_per_s"], bl,
         f"x{r['relayer_empty_cold_to_raw']:.2f} raw"),
        ("relayer one run, in-run duration", r["relayer_empty_run_blocks_per_s"], bl,
         f"x{r['relayer_empty_run_to_raw']:.2f} raw"),
        ("relayer one run, process wall", r["relayer_empty_wall_blocks_per_s"], bl, ""),
    ]  # fmt: skip
    if "relayer_empty_warm_blocks_per_s" in r:
        rows += [
            (f"relayer scan, {r['relayer_empty_history_blocks']:,} blocks relayed before",
             r["relayer_empty_warm_blocks_per_s"], bl, f"x{r['relayer_empty_to_raw']:.2f} raw"),
            ("... that run, in-run duration", r["relayer_empty_warm_run_blocks_per_s"], bl, ""),
        ]  # fmt: skip
    if many:
        rows += [
            (f"raw eth_getLogs, {many['range_size']}-block ranges",
             r["raw_empty_blocks_per_s_small_ranges"], bl, ""),
            (f"relayer {many['runs']} runs, in-run durations",
             r["relayer_empty_run_blocks_per_s_small_batches"], bl, ""),
            (f"relayer {many['runs']} runs, process wall",
             r["relayer_empty_wall_blocks_per_s_small_batches"], bl, ""),
        ]  # fmt: skip
    rows += [
        ("idle run, python main.py wall", r["idle_run_s"], "s", ""),
        ("idle run, in-run duration", r["idle_run_duration_s"], "s", ""),
        ("idle run, CPU", r["idle_run_cpu_s"], "s", ""),
        (f"peak RSS, {r['rss_100k_events']:,} events in one batch", r["peak_rss_100k_mb"], "MB",
         f"{r['rss_100k_wall_s']:.1f} s wall, {r['rss_100k_cpu_s']:.1f} s CPU (while the "
         "other chains were made)"),
        (f"peak RSS, {details['busy']['events']:,} events in one batch", r["peak_rss_mb"], "MB",
         ""),
        ("floor peak RSS, the same 20,000 events", r["floor_peak_rss_mb"], "MB", ""),
        (f"floor peak RSS, the same {r['rss_100k_events']:,} events", r["floor_peak_rss_100k_mb"],
         "MB", ""),
    ]  # fmt: skip
    if "follow_latency_p95_s" in r:
        rows += follow_rows(r)
    width = max(len(name) for name, *_ in rows)
    lines = [f"{'measure':<{width}}  {'value':>12}  {'unit':<8}  ratio", "-" * (width + 50)]
    for name, value, unit, ratio in rows:
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
        lines.append(f"{name:<{width}}  {shown:>12}  {unit:<8}  {ratio}")
    for t in r.get("follow_targets", []):
        mark = "held" if t["holds"] else "MISSED"
        lines.append(f"follow target {t['target']}: {t['value']:.2f} ({t['wanted']}): {mark}")
    lines += ["", "Targets (issue 13):", targets_table(r)]
    if ceiling := ceiling_line(r):
        lines += ["", ceiling]
    return "\n".join(lines)


def ceiling_line(r: dict[str, Any]) -> str:
    """What the least guard reaches against the floor (bench/guarded.py): a target above it
    cannot be held by any relayer that keeps CONTRACT §4's records with these libraries here."""
    parts = [
        f"{label} x{r[key]:.2f}"
        for label, key in (("local", "guarded_to_floor"), ("delayed", "guarded_to_floor_delayed"),
                           ("CPU", "guarded_cpu_to_floor"))
        if key in r
    ]  # fmt: skip
    if not parts:
        return ""
    return (
        "Ceiling (bench/guarded.py: the floor plus only the lease, the records and a fenced "
        f"checkpoint in the same commits): {', '.join(parts)} the floor's"
    )


def with_targets(r: dict[str, Any]) -> dict[str, Any]:
    """results.json's headline: the figures, the six targets, the follow phase's own."""
    follow = follow_targets(r) if "follow_latency_p95_s" in r else []
    return {**r, "targets": targets(r), "follow_targets": follow}
