"""How devstack/rpcproxy/proxy.py answers one JSON-RPC call under the limits it was told to apply.

Each call is planned before anvil sees it (answered here, rewritten, or passed on) and its
answer judged after, as a provider with those limits would: a wide eth_getLogs range or too
many logs is refused with that provider's body, and a lagging node hides blocks past its head.
An older node's logs lack `blockTimestamp`; a broken one repeats a log (`reshape_logs`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.rpcproxy.bodies import HEAD_RACE, RANGE_BODIES, RESULT_BODIES, Body, format_body


@dataclass(frozen=True)
class Limits:
    range: tuple[int, str] | None = None
    results: tuple[int, str] | None = None
    lag: tuple[int, str] | None = None
    batch: tuple[int, str] | None = None  # most calls in one batch, and whose refusal
    strip_timestamps: bool = False  # logs without blockTimestamp, as older nodes send them


class Head:
    """The head this node admits to, asked of anvil once per request and never recorded."""

    def __init__(self, post: Callable[[bytes], tuple[int, bytes]], limits: Limits) -> None:
        self._post, self._behind = post, limits.lag[0] if limits.lag else 0
        self._value: int | None = None

    def served(self) -> int:
        if self._value is None:
            call = {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}
            payload = self._post(json.dumps(call).encode())[1]
            self._value = max(0, int(json.loads(payload)["result"], 16) - self._behind)
        return self._value


@dataclass
class Plan:
    call: dict[str, Any]  # what goes to anvil, rewritten where this node would read it so
    answer: dict[str, Any] | None = None  # set once answered, by the proxy or by anvil
    status: int = 200
    out: str = "upstream"
    log_range: tuple[int, int] | None = None


def plan_call(call: dict[str, Any], limits: Limits, head: Head) -> Plan:
    """Decide one call before anvil sees it: answer it here, rewrite it, or pass it on."""
    plan = Plan(call)
    method, params = call.get("method"), list(call.get("params") or [])
    if limits.lag is not None and method == "eth_blockNumber":
        return _local(plan, "lag", result=hex(head.served()))
    if limits.lag is not None and method == "eth_getBlockByNumber" and params:
        if params[0] in ("latest", "pending"):
            plan.call, plan.out = {**call, "params": [hex(head.served()), *params[1:]]}, "lag"
        elif _is_hex(params[0]) and int(params[0], 16) > head.served():
            return _local(plan, "lag", result=None)  # geth: null for a block it does not have
        return plan
    query = params[0] if method == "eth_getLogs" and params else None
    if not isinstance(query, dict) or "blockHash" in query:
        return plan
    low = _resolve(query.get("fromBlock", "latest"), head)
    high = _resolve(query.get("toBlock", "latest"), head)
    if low is None or high is None:
        return plan
    if limits.range is not None and high - low + 1 > limits.range[0]:
        n, provider = limits.range
        return _refuse(plan, "range", RANGE_BODIES[provider], lo=low, hi=high, n=n, fit=low + n - 1)
    if limits.lag is not None and high > head.served():
        if limits.lag[1] == "error":
            return _local(plan, "lag", error=HEAD_RACE)
        if low > head.served():
            return _local(plan, "lag", result=[])
        high, plan.out = head.served(), "lag"
    plan.call = {**call, "params": [{**query, "fromBlock": hex(low), "toBlock": hex(high)}]}
    plan.log_range = (low, high)
    return plan


def judge(plan: Plan, limits: Limits, head: Head) -> None:
    """Read anvil's answer as the provider would: count the logs, hide blocks past the head."""
    result = (plan.answer or {}).get("result")
    if plan.log_range and limits.results and isinstance(result, list):
        n, provider = limits.results
        if len(result) > n:
            low, high = plan.log_range
            over = sorted(int(log["blockNumber"], 16) for log in result)[n]
            fit = max(low, over - 1)
            _refuse(plan, "results", RESULT_BODIES[provider], lo=low, hi=high, n=n, fit=fit)
    block = result if plan.call.get("method") == "eth_getBlockByHash" else None
    if limits.lag and isinstance(block, dict) and int(block["number"], 16) > head.served():
        _local(plan, "lag", result=None)


def _refuse(plan: Plan, out: str, body: Body, **values: int) -> Plan:
    error: dict[str, Any] = {"code": body.code, "message": format_body(body, **values)}
    if body is RESULT_BODIES["infura"]:
        data = {"from": f"0x{values['lo']:X}", "limit": values["n"], "to": f"0x{values['fit']:X}"}
        error["data"] = data
    return _local(plan, out, status=body.status, error=error)


def _local(plan: Plan, out: str, *, status: int = 200, **answer: Any) -> Plan:
    plan.answer = {"jsonrpc": "2.0", "id": plan.call.get("id"), **answer}
    plan.status, plan.out = status, out
    return plan


def _resolve(tag: Any, head: Head) -> int | None:
    if tag in ("latest", "pending"):
        return head.served()
    if tag == "earliest":
        return 0
    return int(tag, 16) if _is_hex(tag) else None


def _is_hex(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) > 2


def numeric_bounds(params: list[Any]) -> tuple[int, int] | None:
    query = params[0] if params and isinstance(params[0], dict) else {}
    low, high = query.get("fromBlock"), query.get("toBlock")
    return (int(str(low), 16), int(str(high), 16)) if _is_hex(low) and _is_hex(high) else None


REPEATS = ("copy", "shared_index")


def reshape_logs(logs: list[dict[str, Any]], strip: bool, repeat: str | None) -> list[Any]:
    """An eth_getLogs result as an older or broken node sends it: without `blockTimestamp`,
    and/or with its first log again at the end, as an exact copy ("copy", Darwinia) or as a
    different log at the same index ("shared_index", Erigon 3 on Polygon)."""
    out = [{k: v for k, v in e.items() if not (strip and k == "blockTimestamp")} for e in logs]
    if repeat == "copy" and out:
        out.append(dict(out[0]))
    elif repeat == "shared_index" and out:
        data = str(out[0]["data"])
        other = data[:-1] + ("1" if data[-1:] != "1" else "2") if len(data) > 2 else "0x01"
        out.append({**out[0], "data": other})
    return out
