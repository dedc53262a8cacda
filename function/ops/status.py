"""Status of a relayer (docs/CONTRACT.md §5) and its Prometheus metrics (§6).

`relayer_status` is pure: it judges health from the stored document, the head and the
clock, so every rule is tested without I/O. Nothing here can show a secret: endpoints are
shown by host only (`Settings.rpc_hosts`, the hosts `rpc_limits` is keyed by), never by URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from function.adapters.firestore.leasedoc import lease_of
from function.config import Settings
from function.core.lease import following
from function.core.summary import FAILED, OUTCOMES

STALE_INTERVALS = 3


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def lag_limit(settings: Settings) -> int:
    """The most blocks a healthy relayer lags: RELAYER_MAX_LAG_BLOCKS, else the confirmations
    plus one batch. A relayer further behind cannot catch up in its next run (a follower: in
    its next look), so it is behind whatever the chain; one within it is caught up by then."""
    if settings.max_lag_blocks is not None:
        return settings.max_lag_blocks
    return settings.confirmations + settings.batch_size


def _lagging(
    settings: Settings, lag: int | None, last_run: Mapping[str, Any] | None, next_block: int
) -> str | None:
    """Why the relayer is too far behind, or None. The default limit is measured against
    the head the relayer relays from: with RELAYER_HEAD=safe or finalized the chain's own
    finality gap (64 blocks on Ethereum, thousands on some rollups) is not the relayer's
    lag, so the last run's view of that head counts, not `latest`."""
    limit = lag_limit(settings)
    if settings.max_lag_blocks is not None:
        if lag is not None and lag > limit:
            return f"lagging: {lag} blocks behind (RELAYER_MAX_LAG_BLOCKS={limit})"
        return None
    why = (
        f"more than the next run can catch up (limit {limit} = RELAYER_CONFIRMATIONS "
        f"{settings.confirmations} + RELAYER_BATCH_SIZE {settings.batch_size}; "
        "RELAYER_MAX_LAG_BLOCKS overrides)"
    )
    if settings.head == "latest":
        if lag is not None and lag > limit:
            return f"lagging: {lag} blocks behind the head, {why}"
        return None
    seen = (last_run or {}).get("head_block")
    behind = int(seen) - next_block + 1 if isinstance(seen, int) else None
    if behind is not None and behind > limit:
        return f"lagging: {behind} blocks behind the {settings.head} head of the last run, {why}"
    return None


def _lease(doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Who holds the lease now (`held`), and since and until when."""
    lease = lease_of(doc)
    held = lease.owner is not None and lease.expires_at is not None and lease.expires_at > now
    return {
        "owner": lease.owner,
        "held": held,
        "since": _iso(lease.since),
        "expires_at": _iso(lease.expires_at),
        "follow_until": _iso(lease.follow_until),
        "fence": lease.fence,
    }


def reorganisations(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The reorganisations the state remembers, newest first: the `reorg` of each run
    summary kept (`last_run`, and the `recent_runs` entries that carry one)."""
    runs = [*(doc.get("recent_runs") or []), doc.get("last_run") or {}]
    found: dict[Any, dict[str, Any]] = {}
    for run in runs:
        reorg = run.get("reorg") if isinstance(run, Mapping) else None
        if not isinstance(reorg, Mapping) or not any(reorg.values()):
            continue
        found[run.get("run_id")] = {
            "run_id": run.get("run_id"),
            "at": _iso(run.get("started_at")),
            "depth": int(reorg.get("depth") or 0),
            "ancestor": reorg.get("ancestor"),
            "retracted": int(reorg.get("retracted") or 0),
            "orphaned_above_checkpoint": list(reorg.get("orphaned_above_checkpoint") or []),
        }
    return sorted(found.values(), key=lambda r: str(r["at"]), reverse=True)


def relayer_status(
    settings: Settings,
    doc: Mapping[str, Any] | None,
    head: int | None,
    now: datetime,
    lag_seconds: float | None = None,
    backfills: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One relayer's entry of `/status`, with `healthy` and the `reasons` when it is not;
    `backfills`: its backfill tasks' progress (a slice each, `claims.progress`)."""
    doc = doc or {}
    next_block = doc.get("next_block")
    if next_block is None:
        next_block = settings.start_block
    last_run = doc.get("last_run")
    last_success = doc.get("last_success_at")
    # A look at the chain: every look of a follower, the end of a one-batch run; state
    # written by older versions has only `last_success_at`.
    last_look = doc.get("last_look_at")
    looked = max((t for t in (last_look, last_success) if t is not None), default=None)
    lease = lease_of(doc)
    follows = following(lease, now)
    reasons: list[str] = []
    if not doc:
        reasons.append("no run has recorded state yet")
    # A failed run is the relayer's state until a later run looks at the chain: a follower
    # that took over records its looks long before its own summary.
    failed_at = last_run.get("finished_at") if last_run else None
    recovered = isinstance(failed_at, datetime) and last_look is not None and last_look > failed_at
    if last_run and last_run.get("outcome") == FAILED and not recovered:
        reasons.append(f"last run failed: {last_run.get('error') or 'unknown error'}")
    limit = STALE_INTERVALS * settings.poll_interval_s
    if doc and looked is None:
        reasons.append("no successful run yet")
    elif looked is not None and (now - looked).total_seconds() > limit:
        age = (now - looked).total_seconds()
        reasons.append(
            f"stale: last successful look at the chain {age:.0f} s ago (limit {limit:.0f} s = "
            f"{STALE_INTERVALS} x RELAYER_POLL_INTERVAL)"
        )
    lag = max(0, head - int(next_block) + 1) if head is not None else None
    lagging = _lagging(settings, lag, last_run, int(next_block))
    if lagging:
        reasons.append(lagging)
    totals = doc.get("totals") or {}
    return {
        "relayer_id": settings.relayer_id,
        "chain_id": settings.chain_id,
        "contracts": list(settings.contracts),
        "topic": settings.topic,
        "next_block": int(next_block),
        "head_block": head,
        "lag_blocks": lag,
        "lag_seconds": lag_seconds if lag else (0 if lag == 0 else None),
        "last_run": _iso(last_run),
        "last_success_at": _iso(last_success),
        "last_look_at": _iso(looked),
        "following": follows,
        "following_since": _iso(lease.since) if follows else None,
        "following_until": _iso(lease.follow_until) if follows else None,
        "totals": {
            "events_published": int(totals.get("events_published") or 0),
            "events_retracted": int(totals.get("events_retracted") or 0),
            "events_deadlettered": int(totals.get("events_deadlettered") or 0),
            "runs": int(totals.get("runs") or 0),
            "outcomes": {o: int((totals.get("outcomes") or {}).get(o) or 0) for o in OUTCOMES},
        },
        "healthy": not reasons,
        "reasons": reasons,
        "recent_runs": _iso(list(doc.get("recent_runs") or [])),
        # Beyond docs/CONTRACT.md §5, for the page: what to judge the figures by, who holds
        # the lease, where the relayer reads the chain, and what reorganised.
        "confirmations": settings.confirmations,
        # "RELAYER_CONFIRMATIONS", "chain preset" or "default" (README: Known chains)
        "confirmations_from": settings.confirmations_from,
        "chain_name": settings.chain_name,
        "head": settings.head,
        "poll_interval_s": settings.poll_interval_s,
        "max_lag_blocks": lag_limit(settings),
        "max_lag_default": settings.max_lag_blocks is None,
        "lease": _lease(doc, now),
        "rpc_hosts": list(settings.rpc_hosts),
        "rpc_limits": [
            {"host": str(e.get("host")), "blocks": int(e.get("blocks") or 0)}
            for e in doc.get("rpc_limits") or []
            if isinstance(e, Mapping)
        ],
        "reorgs": reorganisations(doc),
        # What it relays: RELAYER_ARG_FILTERS, a part each, and RELAYER_INCLUDE.
        "arg_filters": [f.text for f in settings.arg_filters],
        "include": list(settings.include),
        # RELAYER_FACTORY: the factory and how many children it has relayed so far.
        "factory": settings.factory.text if settings.factory else None,
        "children": int((doc.get("children") or {}).get("count") or 0)
        if settings.factory
        else None,
        # Beyond §5: each backfill task (a slice of a parallel one) and how far it got.
        "backfills": [dict(b) for b in backfills],
    }


def misconfigured(label: str, problems: Sequence[str]) -> dict[str, Any]:
    """The entry of a RELAYER_CONFIG relayer that cannot run (its secret not mounted, a bad
    value): unhealthy, its problems the reasons; nothing is read for it, so every figure is
    unknown. `configured: false` tells the page."""
    return {
        "relayer_id": label,
        "chain_id": None,
        "contracts": [],
        "topic": None,
        "next_block": None,
        "head_block": None,
        "lag_blocks": None,
        "lag_seconds": None,
        "last_run": None,
        "last_success_at": None,
        "last_look_at": None,
        "following": False,
        "totals": {
            "events_published": 0,
            "events_retracted": 0,
            "events_deadlettered": 0,
            "runs": 0,
            "outcomes": dict.fromkeys(OUTCOMES, 0),
        },
        "healthy": False,
        "reasons": [f"misconfigured: {p}" for p in problems],
        "configured": False,
        "recent_runs": [],
        "backfills": [],
    }


def report(relayers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole `/status` body: healthy only when every relayer is."""
    return {"healthy": all(r["healthy"] for r in relayers), "relayers": list(relayers)}


class _Snapshot(Collector):
    def __init__(self, relayers: Sequence[dict[str, Any]]) -> None:
        self._relayers = relayers

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        label = ["relayer_id"]
        gauges = {
            key: GaugeMetricFamily(name, text, labels=label)
            for key, name, text in (
                ("next_block", "relayer_next_block", "First block not yet relayed."),
                ("head_block", "relayer_head_block", "Chain head seen by status."),
                ("lag_blocks", "relayer_lag_blocks", "Blocks not yet relayed."),
                (
                    "last_success",
                    "relayer_last_success_timestamp_seconds",
                    "Unix time of the last successful run.",
                ),
                ("healthy", "relayer_healthy", "1 when the relayer is healthy."),
                (
                    "max_lag",
                    "relayer_max_lag_blocks",
                    "Lag beyond which status calls the relayer unhealthy.",
                ),
                ("following", "relayer_following", "1 while a run follows the chain."),
            )
        }
        published = CounterMetricFamily(
            "relayer_events_published", "Events published to Pub/Sub.", labels=label
        )
        retracted = CounterMetricFamily(
            "relayer_events_retracted",
            "Published events retracted after a reorganisation.",
            labels=label,
        )
        dead = CounterMetricFamily(
            "relayer_events_deadlettered",
            "Undecodable logs sent to the dead-letter topic.",
            labels=label,
        )
        runs = CounterMetricFamily(
            "relayer_runs", "Runs by outcome.", labels=["relayer_id", "outcome"]
        )
        for r in self._relayers:
            rid = [r["relayer_id"]]
            gauges["healthy"].add_metric(rid, 1.0 if r["healthy"] else 0.0)
            if r.get("configured") is False:  # nothing was read: no figure to give
                continue
            gauges["next_block"].add_metric(rid, r["next_block"])
            if r["head_block"] is not None:
                gauges["head_block"].add_metric(rid, r["head_block"])
                gauges["lag_blocks"].add_metric(rid, r["lag_blocks"])
            if r["last_success_at"]:
                stamp = datetime.fromisoformat(r["last_success_at"])
                gauges["last_success"].add_metric(rid, stamp.timestamp())
            if r.get("max_lag_blocks") is not None:
                gauges["max_lag"].add_metric(rid, r["max_lag_blocks"])
            gauges["following"].add_metric(rid, 1.0 if r.get("following") else 0.0)
            published.add_metric(rid, r["totals"]["events_published"])
            retracted.add_metric(rid, r["totals"]["events_retracted"])
            dead.add_metric(rid, r["totals"]["events_deadlettered"])
            for outcome, count in r["totals"]["outcomes"].items():
                runs.add_metric([r["relayer_id"], outcome], count)
        yield from gauges.values()
        yield published
        yield retracted
        yield dead
        yield runs


def metrics_text(relayers: Sequence[dict[str, Any]]) -> bytes:
    """Prometheus text exposition of the status snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(relayers))
    return generate_latest(registry)


def html_page(body: Mapping[str, Any], now: datetime | None = None) -> str:
    """The page for people at `/` (see `status_page`)."""
    import function.ops.status_page as status_page

    return status_page.render(body, now or datetime.now(UTC))
