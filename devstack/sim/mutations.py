"""Known protocol defects the simulation can put back (`--mutate`), to show its checks catch
each one: a check that no mutation can fail checks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import function.core.lease as leases
import function.core.watch as watch
import function.run.fetching as fetching
import function.run.leasing as leasing
import function.run.relay as relay
from function.core.lease import Lease

MUTATIONS: dict[str, str] = {
    "anchor": "(a) the checkpoint block is not read again in the view of the logs",
    "orphans": "(b) records above the checkpoint whose blocks were replaced are not retracted",
    "fencing": "(c) the store accepts the writes of a run whose lease was taken over",
    "release": "(d) a run that gave up on requests in flight releases its lease at once",
    "handover": "(e) a run that finds a follower about to end skips instead of waiting for it",
    "brief": "(f) a run waits for a follower about to end for one lease poll only",
    "children": "(g) a commit stores the factory's children without the newest one",
    "late": "(h) a new child's logs are not read again in the window that creates it",
    "forget": "(i) children above the checkpoint are kept when a look starts again",
}

_fetch = fetching.fetch
_handover_until = leases.handover_until


def _no_anchor(*args: Any, **kwargs: Any) -> Any:
    kwargs["anchor"] = None
    return _fetch(*args, **kwargs)


_addresses = watch.Watch.addresses
_write_for = watch.Watch.write_for


def _newest_left_out(self: watch.Watch, next_block: int) -> watch.ChildWrite | None:
    write = _write_for(self, next_block)
    if write is None or not write.children:
        return write
    kept = write.children[:-1]
    return watch.ChildWrite(kept, min(write.changed_from, len(kept)), write.to_block)


def _no_new_children(self: watch.Watch, found: Any = None) -> list[str] | None:
    """The address list without the children found in this read: the window's own
    creations are neither asked for again nor in the next requests of the window."""
    return _addresses(self, None)


def _skip_handover(*args: Any, **kwargs: Any) -> datetime | None:
    return None


def _brief_handover(
    current: Lease, run_id: str, now: datetime, patience_s: float, grace_s: float
) -> datetime | None:
    if _handover_until(current, run_id, now, patience_s, grace_s) is None:
        return None
    return now + timedelta(seconds=relay.HANDOVER_STEP_S)


@contextmanager
def mutated(name: str | None) -> Iterator[None]:
    """Put back defect `name` while entered ("fencing" is the fake store's own switch)."""
    with ExitStack() as stack:
        if name == "anchor":
            stack.enter_context(mock.patch.object(relay, "fetch", _no_anchor))
        elif name == "orphans":
            stack.enter_context(
                mock.patch.object(relay._Run, "_retract_orphans", lambda self, orphans: None)
            )
        elif name == "release":
            stack.enter_context(
                mock.patch.object(leasing.LeaseKeeper, "held_until", lambda self, until: None)
            )
        elif name == "handover":
            stack.enter_context(mock.patch.object(relay, "handover_until", _skip_handover))
        elif name == "brief":
            stack.enter_context(mock.patch.object(relay, "handover_until", _brief_handover))
            stack.enter_context(
                mock.patch.object(
                    relay, "still_waiting_until", lambda current, give_up, end: give_up
                )
            )
        elif name == "children":
            stack.enter_context(mock.patch.object(watch.Watch, "write_for", _newest_left_out))
        elif name == "late":
            stack.enter_context(mock.patch.object(watch.Watch, "addresses", _no_new_children))
        elif name == "forget":
            stack.enter_context(mock.patch.object(watch.Watch, "forget_from", lambda s, b: 0))
        elif name not in (None, "fencing"):
            raise ValueError(f"unknown mutation {name!r}: one of {', '.join(MUTATIONS)}")
        yield
