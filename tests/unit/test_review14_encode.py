"""Review 14 (guard, passes): the one module-level JSON encoder of `messages.encode`
(56db047) makes the very bytes `json.dumps(..., separators=(",", ":"), ensure_ascii=False)`
made, for awkward payloads, from many threads at once, and after a payload it refused (a
cycle, a value JSON has no form for): it keeps no state between calls. The message bytes
are what a retraction is rebuilt from later (CONTRACT §3/§4), so they may never change."""

from __future__ import annotations

import json
import math
import threading
from decimal import Decimal
from typing import Any

import pytest

from function.core.messages import encode


def _old(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


AWKWARD: list[Any] = [
    {},
    {"a": [], "b": {}, "c": [{}], "d": [[[]]]},
    {"unicode": "é中文🦄\u200b\u2028\u2029", "ctl": '\x00\x1f\x7f"\\/', "ключ": "значение"},
    {"big": 2**256 - 1, "neg": -(2**255), "zero": 0, "bool": True, "none": None},
    {
        "float": 0.1,
        "exp": 1e300,
        "tiny": 5e-324,
        "negzero": -0.0,
        "nan": math.nan,
        "inf": math.inf,
    },
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"nested": {"deep": [{"x": [1, {"y": ["z" * 1000]}]}] * 5}},
    {"tuple": (1, 2, (3, "4")), "str_payload_inside": "plain"},
    {"args": {"to": "0x" + "ab" * 20, "value": "123456789012345678901234567890"}},
    {"order": {"b": 1, "a": 2, "c": {"z": 0, "y": 1}}},  # insertion order, not sorted
]


@pytest.mark.parametrize("payload", AWKWARD)
def test_the_bytes_are_those_json_dumps_made(payload: Any) -> None:
    assert encode(payload) == _old(payload)


def test_a_refused_payload_leaves_the_encoder_as_it_was() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    bads: list[dict[Any, Any]] = [cycle, {"d": Decimal("1.5")}, {"b": b"bytes"}, {("t",): 1}]
    for bad in bads:
        with pytest.raises((ValueError, TypeError)):
            encode(bad)
        with pytest.raises((ValueError, TypeError)):
            _old(bad)
    shared = {"x": 1}
    assert encode({"a": shared, "b": shared}) == _old({"a": shared, "b": shared})  # no cycle


def test_many_threads_at_once_get_their_own_bytes() -> None:
    payloads = [
        {"i": i, "s": "é" * (i % 7), "n": {"deep": [i] * (i % 13)}, "big": 2**200 + i}
        for i in range(400)
    ]
    expected = [_old(p) for p in payloads]
    barrier = threading.Barrier(8)
    wrong: list[int] = []

    def work(offset: int) -> None:
        barrier.wait()
        for _ in range(20):
            for i in range(offset, len(payloads), 8):
                if encode(payloads[i]) != expected[i]:
                    wrong.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
