"""The record every run ends with (docs/CONTRACT.md §2), logged and stored as `last_run`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

OK = "ok"
IDLE = "idle"
SKIPPED = "skipped"
FAILED = "failed"
OUTCOMES = (OK, IDLE, SKIPPED, FAILED)


@dataclass
class RunSummary:
    """What one run did; mutable while the run goes, frozen into a dict at the end."""

    run_id: str
    relayer_id: str
    started_at: datetime
    outcome: str = FAILED
    from_block: int | None = None
    to_block: int | None = None
    events_published: int = 0
    duplicates_skipped: int = 0
    dead_lettered: int = 0
    duration_s: float = 0.0
    finished_at: datetime | None = None
    error: str | None = None
    head_block: int | None = None
    interrupted: bool = False
    to_block_time: int | None = None  # the block time of to_block, when the run read it
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out

    def as_json(self) -> dict[str, Any]:
        """Datetimes as RFC 3339 strings, for logs and HTTP answers."""
        return {
            k: (v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v)
            for k, v in self.as_dict().items()
        }


def headline(s: RunSummary) -> str:
    """The summary line's message: the problem first, then what the run got through (no
    `blocks None..None` for a run that touched no block)."""
    work = _work(s)
    if s.error:
        return f"run {s.outcome}: {s.error}" + (f" ({work})" if work else "")
    return f"run {s.outcome}: {work}" if work else f"run {s.outcome} in {s.duration_s:.2f} s"


def _work(s: RunSummary) -> str | None:
    took = f"in {s.duration_s:.2f} s"
    if s.from_block is None:
        return None
    if s.to_block is None:
        if s.outcome == IDLE:
            return f"nothing new from block {s.from_block} {took}"
        return f"no block relayed from {s.from_block} {took}"
    return (
        f"blocks {s.from_block}..{s.to_block}, {s.events_published} published, "
        f"{s.duplicates_skipped} duplicates skipped {took}"
    )


# The summary line carries docs/CONTRACT.md §2's fields always; the others when they say something.
_LOGGED_ALWAYS = (
    "outcome", "from_block", "to_block", "events_published", "duplicates_skipped", "duration_s",
)  # fmt: skip


# Kept in `last_run` for status, not repeated on the log line: Cloud Run labels every line
# of an execution with its name already.
_STATE_ONLY = frozenset({"execution"})


def log_fields(
    s: RunSummary, *, started: bool = True, dead_letters: bool = False
) -> dict[str, Any]:
    """The fields of the summary log line. Short on purpose: the error is in the message
    (once), the start and end times are the line's `time` and `duration_s`; `last_run`
    in Firestore keeps the whole record. A run that never started (`started=False`: a
    deployment error) has no run id worth showing; `dead_lettered` is shown when the
    relayer has a dead-letter topic, or when anything was dead-lettered."""
    record = s.as_json()
    fields = {k: record[k] for k in _LOGGED_ALWAYS}
    if started:
        fields["run_id"] = s.run_id
    if dead_letters or s.dead_lettered:
        fields["dead_lettered"] = s.dead_lettered
    if s.head_block is not None:
        fields["head_block"] = s.head_block
    # The lag after the run, for the log-based metrics (infra/monitoring.tf); left out when
    # the run did not learn it (absent, never 0, so a chart shows no point rather than a
    # false "caught up").
    if s.head_block is not None and s.to_block is not None:
        fields["lag_blocks"] = max(0, s.head_block - s.to_block)
    if s.to_block_time is not None and s.finished_at is not None:
        behind = s.finished_at.timestamp() - s.to_block_time
        fields["lag_seconds"] = round(max(0.0, behind), 3)  # a block stamped ahead is not behind
    if s.interrupted:
        fields["interrupted"] = True
    fields.update((k, v) for k, v in s.extra.items() if k not in _STATE_ONLY)
    return fields
