"""Every endpoint's chain id, asked of all of them at once when a run starts.

A failover URL on another chain would otherwise be found only the day the first endpoint
fails, mid-run. The calls run in parallel daemon threads with a short timeout, so one slow
or dead endpoint costs the start at most that long, and a stop (SIGTERM) ends the wait.
Endpoints are named by host only: the URL carries the API key. The first endpoint, the one
a run reads first, is asked over the run's own session (`session`): its connection is then
open for the run's first read (TCP's and TLS's handshakes are round trips off every start).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from function.stopping import StopSignal

Answer = int | str  # the chain id, or why there is none


def chain_ids(
    urls: Sequence[str],
    timeout_s: float,
    stop: StopSignal | None,
    session: requests.Session | None = None,
) -> list[Answer]:
    """One answer per URL, in order: the chain id it serves, or a reason it gave none."""
    answers: list[Answer] = ["no answer in time"] * len(urls)
    posts: list[Callable[..., Any]] = [requests.post] * len(urls)
    if session is not None and posts:
        posts[0] = session.post
    threads = [
        threading.Thread(target=_ask, args=(post, url, timeout_s, answers, i), daemon=True)
        for i, (post, url) in enumerate(zip(posts, urls, strict=True))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s + 0.5
    for thread in threads:
        while thread.is_alive() and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return list(answers)  # the run stops at its first call; no need to wait here
            thread.join(min(0.05, max(0.0, deadline - time.monotonic())))
    return list(answers)


def _ask(
    post: Callable[..., Any], url: str, timeout_s: float, answers: list[Answer], i: int
) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    try:
        response = post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout_s
        )
        result = json.loads(response.content).get("result")
        answers[i] = int(result, 16) if isinstance(result, str) else f"HTTP {response.status_code}"
    except requests.RequestException as e:
        answers[i] = type(e).__name__  # requests' messages carry the full URL
    except (ValueError, AttributeError, TypeError):
        answers[i] = "an answer that is not a chain id"
