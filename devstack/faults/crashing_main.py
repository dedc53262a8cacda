"""`python main.py` (or, with arguments, the `relayer` CLI) with a crash point, for the
crash tests and the fault campaign (devstack/faults/campaign.py) only.

Production code carries no crash hooks: this wrapper patches the run's adapters in its own
process and then runs main.py exactly as the job does. CRASH_AT names the point, CRASH_ON
the how-many-th arrival at that point acts (1-based), CRASH_ACTION what happens there:
`kill` (SIGKILL, the default), `stall` (this thread sleeps CRASH_SLEEP seconds, then goes
on: a run that stalls past its lease) or `freeze` (SIGSTOP to itself: every thread stops
until the campaign sends SIGCONT, like a paused VM). The points, in the order of a run:
- `after_lease`: the lease was granted;
- `after_plan`: the block range was planned;
- `during_getlogs`: CRASH_DELAY_MS after an eth_getLogs request went out (the campaign
  makes its answer slow, so the kill lands while it is in flight);
- `after_decode`: the range's logs were fetched and decoded;
- `after_read`: the processed-event set was read: which blocks of the range have records (a
  look's first read, from which a fresh chunk's publishing is decided), a chunk's records,
  or a rewind's;
- `before_publish`: the chunk's messages are about to be handed to Pub/Sub;
- `mid_publish`: Pub/Sub accepts the messages up to the CRASH_ON-th one sent, then SIGKILL
  (with `stall`: a pause before the rest of the request is sent; with `freeze`: the rest goes
  out as a request of its own and CRASH_DELAY_MS later the process stops, that request in
  flight, not yet written or just answered);
- `before_record`: every message of the chunk accepted, before any record is written;
- `after_record`: the chunk's records written, before its checkpoint commit;
- `during_commit`, `during_release`: CRASH_DELAY_MS after a commit RPC went out, in flight
  or just answered (a checkpoint or lease renewal, not a follower's commit between two
  looks; the last commit, which stores the summary and releases the lease);
- `after_commit`, `after_release`: such a commit returned (any commit but the last);
- `during_look_commit`, `between_looks` (follow mode): CRASH_DELAY_MS after the commit
  between two looks went out (checkpoint, look, lease renewed), or once it returned, before
  the wait for the next look; CRASH_ON counts looks;
- `slow_publish`: no crash; messages go one per request, each after CRASH_SLEEP seconds
  (a slow Pub/Sub);
- `none`: no crash (the campaign's plain runs, still tagged and journaled).
Random instants need no point: the campaign kills the process from outside.

For the campaign, FAULT_RUN tags every published message with a `fault_run` attribute (who
published each copy) and FAULT_LOG names a journal: JSON lines written straight to the file
(nothing buffered, so a SIGKILL loses none) of the lease grants (with the lease document:
the job's or a backfill task's), the publish requests as they start and as their answers
come back (or fail), the records and the commits (with when each write began). With
arguments the wrapper runs the `relayer` CLI (`backfill`, `reset`) under the same hooks.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Run as a script, this folder is sys.path[0]: the campaign's modules (markdown.py, report.py,
# world.py ...) would shadow top-level packages of those names. The checkout's root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

from google.cloud.firestore_v1.batch import WriteBatch  # noqa: E402

import function.core.lease  # noqa: E402
import function.run.relay  # noqa: E402
from function.adapters.chain import ChainReader  # noqa: E402
from function.adapters.firestore.blockstore import BlockStore  # noqa: E402
from function.adapters.firestore.state import FirestoreState  # noqa: E402
from function.adapters.pubsub import Publisher  # noqa: E402
from function.core.checkpoint import Commit, Grant  # noqa: E402
from function.core.messages import Message  # noqa: E402
from function.core.model import BlockRecord  # noqa: E402
from function.errors import LeaseLostError, PublishError  # noqa: E402
from function.run.dispatch import Dispatcher  # noqa: E402

POINTS = (
    "after_lease",
    "after_plan",
    "during_getlogs",
    "after_decode",
    "after_read",
    "before_publish",
    "mid_publish",
    "before_record",
    "after_record",
    "during_commit",
    "after_commit",
    "during_release",
    "after_release",
    "during_look_commit",
    "between_looks",
)
POINT = os.environ.get("CRASH_AT", "none")
ON = int(os.environ.get("CRASH_ON", "1"))
ACTION = os.environ.get("CRASH_ACTION", "kill")
PAUSE = float(os.environ.get("CRASH_SLEEP", "0.5"))
DELAY_S = float(os.environ.get("CRASH_DELAY_MS", "2")) / 1000
TAG = os.environ.get("FAULT_RUN")
if POINT not in (*POINTS, "slow_publish", "none") or ACTION not in ("kill", "stall", "freeze"):
    raise SystemExit(f"unknown CRASH_AT={POINT} or CRASH_ACTION={ACTION}")

_JOURNAL_PATH = os.environ.get("FAULT_LOG")
_journal = os.open(_JOURNAL_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if _JOURNAL_PATH else None
_arrivals = {"n": 0}
_local = threading.local()


def note(what: str, **fields: Any) -> None:
    """One journal line, in the kernel before this returns."""
    if _journal is not None:
        line = {"what": what, "t": time.time(), "pid": os.getpid(), **fields}
        os.write(_journal, (json.dumps(line, default=str) + "\n").encode())


def _kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _due(point: str) -> bool:
    if point != POINT:
        return False
    _arrivals["n"] += 1
    return _arrivals["n"] == ON


def _pause(point: str) -> None:
    """Stall (this thread sleeps) or freeze (the whole process stops until SIGCONT)."""
    if ACTION == "freeze":
        # Sent to this thread, not the process: a process-wide SIGSTOP may be taken by
        # another thread while this one runs on for a few instructions (its next write
        # would land before the freeze it is meant to follow). Either way every thread stops.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
    else:
        time.sleep(PAUSE)
    note("resumed", point=point)


def arrive(point: str) -> None:
    """At a named point: act if it is the one asked for."""
    if not _due(point):
        return
    note("point", point=point, action=ACTION)
    if ACTION == "kill":
        _kill()
    _pause(point)


def arrive_during(point: str, call: Callable[[], Any]) -> Any:
    """Around an RPC: a kill lands CRASH_DELAY_MS after it went out, while it is in flight
    or just answered, before the run acts on the answer."""
    if not _due(point):
        return call()
    note("point", point=point, action=ACTION)
    if ACTION == "kill":
        threading.Thread(target=call, daemon=True).start()
        time.sleep(DELAY_S)
        _kill()
    _pause(point)
    return call()


def _wrap(owner: Any, name: str, before: str | None = None, after: str | None = None) -> None:
    original = getattr(owner, name)

    def patched(*args: Any, **kwargs: Any) -> Any:
        if before:
            arrive(before)
        result = original(*args, **kwargs)
        if after and result is not None:
            arrive(after)
        return result

    setattr(owner, name, patched)


original_acquire = FirestoreState.acquire
original_decide = function.core.lease.acquire
original_commit = FirestoreState.commit
original_record = BlockStore.write
original_batch_commit = WriteBatch.commit
original_publish = Publisher.publish
original_logs = ChainReader.logs_with_headers
original_commit_look = function.run.relay._Run._commit_look


def decide(current: Any, run_id: str, now: Any, lease_s: float, follow_until: Any = None) -> Any:
    _local.seen = current  # the lease as the acquiring transaction read it
    return original_decide(current, run_id, now, lease_s, follow_until)


def acquire(
    self: FirestoreState, run_id: str, now: Any, lease_s: float, follow_until: Any = None
) -> Any:
    grant = original_acquire(self, run_id, now, lease_s, follow_until)
    if grant is not None:
        seen = getattr(_local, "seen", None)
        note(
            "acquired",
            lease=self._doc.path,  # the job's or a backfill task's: fences count per lease
            run_id=run_id,
            fence=grant.fence,
            next_block=grant.next_block,
            now=now.timestamp(),
            expires=grant.expires_at.timestamp(),
            seen_owner=seen.owner if seen else None,
            seen_expires=seen.expires_at.timestamp() if seen and seen.expires_at else None,
        )
        arrive("after_lease")
    return grant


def commit(self: FirestoreState, grant: Grant, now: datetime, change: Commit) -> None:
    final = change.summary is not None
    progress = change.progress
    _local.commit_point = "during_release" if final else "during_commit"
    if getattr(_local, "look_commit", False):
        _local.commit_point = "during_look_commit"
    started = time.time()  # a freeze may fall between the write and the journal line
    try:
        original_commit(self, grant, now, change)
    except LeaseLostError:
        note("lease_lost", fence=grant.fence)
        raise
    finally:
        _local.commit_point = None
    until = change.lease_until
    note(
        "committed",
        started=started,
        fence=grant.fence,
        next_block=progress.next_block if progress is not None else None,
        lease_until=until.timestamp() if until is not None else None,
        final=final,
    )
    arrive("after_release" if final else "after_commit")


def commit_look(self: Any) -> None:
    _local.look_commit = True
    try:
        original_commit_look(self)
    finally:
        _local.look_commit = False
    note("look_committed", looks=self.looks)
    arrive("between_looks")


def batch_commit(self: WriteBatch, *args: Any, **kwargs: Any) -> Any:
    point = getattr(_local, "commit_point", None)  # the state's commits are batches
    if point:
        return arrive_during(point, lambda: original_batch_commit(self, *args, **kwargs))
    return original_batch_commit(self, *args, **kwargs)


def record(self: BlockStore, grant: Grant, records: Sequence[BlockRecord]) -> None:
    arrive("before_record")
    started = time.time()  # a freeze may fall between the write and the journal line
    try:
        original_record(self, grant, records)
    except LeaseLostError:  # fenced: the lease went to another run meanwhile
        note("lease_lost", fence=grant.fence)
        raise
    ids = [e.event_id for r in records for e in r.entries]
    note("recorded", event_ids=ids, started=started)
    arrive("after_record")


def logs_with_headers(self: ChainReader, *args: Any, **kwargs: Any) -> Any:
    return arrive_during("during_getlogs", lambda: original_logs(self, *args, **kwargs))


def tagged(messages: Any) -> list[Message]:
    if not TAG:
        return list(messages)
    return [Message(m.data, {**m.attributes, "fault_run": TAG}, m.ordering_key) for m in messages]


def publish(self: Publisher, messages: Any, deadline: Any) -> list[str]:
    messages = tagged(messages)
    if POINT == "slow_publish":  # message by message, each after a pause
        ids: list[str] = []
        for m in messages:
            time.sleep(PAUSE)
            ids += _rest(ids, functools.partial(_send, self, [m], deadline))
        return ids
    due = _due_within(len(messages)) if POINT == "mid_publish" else None
    if due is None:
        return _send(self, messages, deadline)
    note("point", point="mid_publish", action=ACTION)
    head, rest = messages[: due + 1], messages[due + 1 :]
    ids = _send(self, head, deadline)  # accepted: the due message and those before it
    if ACTION == "kill":
        _kill()
    if ACTION == "stall" or not rest:
        _pause("mid_publish")
        return ids + (_rest(ids, lambda: _send(self, rest, deadline)) if rest else [])
    # freeze: the next request goes out, and CRASH_DELAY_MS later every thread stops, the
    # request in flight (or not yet written, or just answered) until SIGCONT
    flight: concurrent.futures.Future[list[str]] = concurrent.futures.Future()

    def send_rest() -> None:
        try:
            flight.set_result(_send(self, rest, deadline))
        except BaseException as e:
            flight.set_exception(e)

    threading.Thread(target=send_rest, daemon=True).start()
    time.sleep(DELAY_S)
    _pause("mid_publish")
    return ids + _rest(ids, flight.result)


def _rest(accepted: list[str], send: Callable[[], list[str]]) -> list[str]:
    """The rest of a request this hook sends in parts. Pub/Sub takes a real request whole
    or not at all, so when a later part fails after earlier ones were accepted the request
    failed with its fate unknown (never "not sent", which would let the run treat it as a
    clean stop and leave the accepted part unrecorded)."""
    try:
        return send()
    except PublishError as e:
        if not accepted:
            raise
        raise PublishError(
            f"{len(accepted)} messages of the request were accepted before the rest failed: {e}"
        ) from e


def _due_within(count: int) -> int | None:
    """Which of `count` messages is the CRASH_ON-th to arrive at mid_publish, if one is."""
    first = _arrivals["n"] + 1
    _arrivals["n"] += count
    return ON - first if first <= ON <= _arrivals["n"] else None


def _send(self: Publisher, messages: list[Message], deadline: Any) -> list[str]:
    note("handed", event_ids=[m.attributes.get("event_id") for m in messages])
    try:
        result: list[str] = original_publish(self, messages, deadline)
    except BaseException as e:
        note("answered", ok=False, error=type(e).__name__)  # a request no longer waited on
        raise
    note("answered", ok=True)
    return result


FirestoreState.acquire = acquire  # type: ignore[method-assign]
function.core.lease.acquire = decide
FirestoreState.commit = commit  # type: ignore[method-assign]
BlockStore.write = record  # type: ignore[method-assign]
WriteBatch.commit = batch_commit  # type: ignore[method-assign]
function.run.relay._Run._commit_look = commit_look  # type: ignore[method-assign]
ChainReader.logs_with_headers = logs_with_headers  # type: ignore[method-assign]
Publisher.publish = publish  # type: ignore[method-assign]
_wrap(function.run.relay, "plan_range", after="after_plan")
_wrap(function.run.relay, "fetch", after="after_decode")
_wrap(BlockStore, "refs", after="after_read")
_wrap(BlockStore, "read", after="after_read")
_wrap(Dispatcher, "send", before="before_publish")

note("ready", point=POINT, on=ON, action=ACTION)
os.chdir(ROOT)
if len(sys.argv) > 1:  # `crashing_main.py backfill --from-block ...`: the operator CLI
    from function.ops.cli import main

    main(sys.argv[1:])
else:
    runpy.run_path(str(ROOT / "main.py"), run_name="__main__")
