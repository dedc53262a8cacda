"""The README's reliability table from a campaign's artifacts/faults.json.

`python -m devstack.faults.markdown [artifacts/faults.json]` prints one row per kind of
fault (scenarios grouped as below) and the total, with the figures the README shows.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from devstack.faults.verdict import VIOLATIONS

KINDS = (
    ("kill at every named step", r"^crash@"),
    ("kill at random instants", r"^random_kills$"),
    ("2–8 overlapping runs", r"^overlap$"),
    ("overlapping runs with kills", r"^overlap\+kills$"),
    ("stalled past the lease (one thread sleeps), at 7 steps", r"^stall@"),
    ("frozen (SIGSTOP) 0–4 ms after a publish request started", r"^freeze@mid_publish$"),
    ("frozen (SIGSTOP) at a random instant of publishing", r"^freeze@random$"),
    ("SIGTERM", r"^sigterm$"),
    ("RPC faults", r"^rpc$"),
    ("Firestore contention", r"^contention$"),
    ("Pub/Sub stopped and restarted", r"^pubsub_outage$"),
    ("Firestore stopped and restarted", r"^firestore_outage$"),
    ("1. big and odd events (600 kB bytes, 4 × 90,000 CJK characters in a block, invalid "
     "UTF-8, anonymous), with kills", r"^odd_events$"),
    ("2. repeated logs in eth_getLogs answers (a copy; another log at the same index)",
     r"^rpc_repeats$"),
    ("3. batches capped at 1–5 calls, logs without blockTimestamp, with kills",
     r"^rpc_batch_caps$"),
    ("4. reorganisation between the checkpoint check and eth_getLogs", r"^reorg@getlogs$"),
    ("5. reorganisation over published blocks above the checkpoint", r"^reorg@unrecorded$"),
    ("6. SIGTERM during a 30 s RPC call", r"^sigterm@slow_rpc$"),
    ("6. SIGTERM with a publish request held on the wire 3–12 s", r"^sigterm@slow_pubsub$"),
    ("7. frozen (SIGSTOP) past the lease after publishing, before recording",
     r"^freeze@before_record$"),
    ("8. 2–5 overlapping backfills, one perhaps frozen past its lease", r"^backfills$"),
    ("9. Cloud Storage down under a fleet of 3 relayers (one ABI on gs://)",
     r"^fleet_storage_outage$"),
)  # fmt: skip
FIGURES = ("trials", "runs", "kills", "events", "messages", "lost", "dup_events",
           "double_published", "orphans_published", "retracted")  # fmt: skip
HEADER = (
    "| kind | trials | runs | SIGKILLs | events | messages | lost | duplicated (§7.4) "
    "| double-published | orphans published / retracted | other violations |"
)


def rows(body: dict[str, Any]) -> list[str]:
    """Markdown rows, one per kind that ran, and the total."""
    out = [HEADER, "|" + "---|" * 11]
    total: Counter[str] = Counter()
    for name, pattern in KINDS:
        figures: Counter[str] = Counter()
        for scenario, got in body["scenarios"].items():
            if scenario != "TOTAL" and re.search(pattern, scenario):
                figures.update(got)
        if not figures["trials"]:
            continue
        total.update(figures)
        out.append(_row(name, figures))
    out.append(_row("**total**", total))
    return out


def _row(name: str, f: Counter[str]) -> str:
    other = {v: f[v] for v in VIOLATIONS if f[v] and v not in ("lost", "double_published")}
    if f["trial_errors"]:
        other["trial_errors"] = f["trial_errors"]
    cells = [f"{f[k]:,}" for k in FIGURES[:8]]
    cells.append(f"{f['orphans_published']:,} / {f['retracted']:,}" if f["orphans_published"]
                 else "–")  # fmt: skip
    cells.append(", ".join(f"{k} {v}" for k, v in other.items()) or "0")
    return f"| {name} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/faults.json")
    print("\n".join(rows(json.loads(path.read_text()))))
