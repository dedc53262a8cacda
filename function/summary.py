"""The record every run ends with (CONTRACT §2), logged and stored as `last_run`."""

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
