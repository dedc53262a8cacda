"""The garbage collector, set for a process that makes one run and exits (`python main.py`).

A busy run allocates millions of short-lived objects (a dict per log, a message per event)
and makes almost no reference cycles: reference counting frees nearly everything. Yet with
Python's defaults the cyclic collector runs every 700 allocations, and each of its full
collections walks every object the process holds, the libraries' hundreds of thousands
from their imports included. Measured side by side on the bench chain (20,000 events, 6
runs each, alternating): about 0.4 s less CPU of 2.8 with the imports frozen and the first
threshold at 50,000; the floor (`bench/floor.py`) takes the same setting.

The HTTP functions' processes serve request after request and keep Python's defaults: a
freeze there would keep each request's cycles that are alive at that moment forever.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)
OLDER_THRESHOLDS = (20, 20)  # young collections per middle one, middle ones per full one


def settle_for_one_run() -> None:
    """Keep what is alive now (modules, clients, settings: all of it lives until the exit)
    out of every collection, and collect less often. The young generations are collected
    first (what the build just dropped; frozen, it would stay until the exit): about 0.5 ms,
    where a full collection takes 35 to 70 ms of the start for a few hundred objects.
    Only for a process that is one relayer's (`app.run_relayers`): beside another relayer's
    run, a freeze would keep that run's state, cycles included, for the rest of the process."""
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *OLDER_THRESHOLDS)
