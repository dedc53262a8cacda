"""What hosted JSON-RPC providers answer when they refuse or fail, for devstack/rpcproxy/proxy.py.

The refusal bodies are quoted from public sources (tests/unit/test_provider_errors.py names them);
the status is 200 where no source recorded another. FAILURES names the ways a whole request
can fail; PAGES are the error pages a 5xx comes with.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Body(NamedTuple):
    """A provider's refusal: HTTP status for a lone call, JSON-RPC code, message template."""

    status: int
    code: int
    text: str  # str.format fields: lo, hi, n (the limit), fit (last block that would work), wait


_ALCHEMY_SIZE = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
    "and no limit on the response size, or you can request any block range with a cap of {nk} "
    "logs in the response. Based on your parameters and the response size limit, this block "
    "range should work: [{lo:#x}, {fit:#x}]"
)
# Too many blocks in one eth_getLogs.
RANGE_BODIES = {
    "alchemy": Body(400, -32600, "You can make eth_getLogs requests with up to a {n} block range. "
                    "Based on your parameters, this block range should work: [{lo:#x}, {fit:#x}]"),
    "quicknode": Body(413, -32614, "eth_getLogs is limited to a {n:,} range"),
    "infura": Body(200, -32602, "range {span} exceeds limit of {n}"),
    "blockpi": Body(200, -32602, "eth_getLogs is limited to {n} block range. Please check the "
                    "parameter requirements at  https://docs.blockpi.io/documentations/api-reference"),
    "publicnode": Body(200, -32000, "exceed maximum block range: {n}"),
    "reth": Body(200, -32602, "query exceeds max block range {n}"),
    "cloudflare": Body(200, -32047, "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range "
                       "too large. Max range: {n}"),
    "ankr": Body(200, -32600, "block range is too wide"),
    "chainstack": Body(200, -32602, "Block range limit exceeded. See more details at "
                       "https://docs.chainstack.com/docs/limits#evm-range-limits"),
}  # fmt: skip
# Too many logs in one answer; `fit` is the last block that keeps the answer within the cap.
RESULT_BODIES = {
    "infura": Body(200, -32005, "query returned more than {n} results. Try with this block range "
                   "[0x{lo:X}, 0x{fit:X}]."),
    "alchemy": Body(400, -32602, _ALCHEMY_SIZE),
    "reth": Body(200, -32602, "query exceeds max results {n}, retry with the range {lo}-{fit}"),
    "arbitrum": Body(200, -32000, "logs matched by query exceeds limit of {n}"),
    "geth": Body(200, -32005, "query returned more than {n} results"),
}  # fmt: skip
# Rate limits. "base" answers each call inside HTTP 200, as sepolia.base.org does.
RATE_BODIES = {
    "alchemy": Body(429, 429, "Your app has exceeded its compute units per second capacity. If "
                    "you have retries enabled, you can safely ignore this message. If not, check "
                    "out https://docs.alchemy.com/reference/throughput"),
    "infura": Body(429, -32005, "daily request count exceeded, request rate limited"),
    "quicknode": Body(429, -32007, "300/second request limit reached - reduce calls per second "
                      "or upgrade your account at quicknode.com"),
    "ankr": Body(429, -32090, "Too many requests, reason: call rate limit exhausted, retry in "
                 "{wait}"),
    "base": Body(200, -32007, "25/second request limit reached - reduce calls per second"),
}  # fmt: skip
_NGINX = "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n"
_NGINX += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
PAGES = {
    500: b"Internal Server Error",
    502: _NGINX.format("502 Bad Gateway").encode(),
    503: b"Service Unavailable",
    504: _NGINX.format("504 Gateway Time-out").encode(),
}
FAILURES: tuple[str, ...] = ("http_500", "http_502", "http_503", "http_504", "empty")
FAILURES += ("truncated", "incomplete", "drop", "reset")
HEAD_RACE = {"code": -32602, "message": "block range extends beyond current head block"}  # geth


def format_body(body: Body, **values: Any) -> str:
    n = values.get("n", 0)
    span = values.get("hi", 0) - values.get("lo", 0)
    nk = f"{n // 1000}K" if n and n % 1000 == 0 else str(n)
    return body.text.format(span=span, nk=nk, **values)


class BatchBody(NamedTuple):
    """How a node refuses a batch longer than its cap: the whole answer is one error."""

    shape: str  # "array": a one-item array with the first call's id; "object": id null
    code: int
    text: str  # str.format fields: n (the cap), size (the calls sent)
    data: str | None = None


# Batches over the node's cap, all answered with HTTP 200.
BATCH_BODIES = {
    # go-ethereum rpc/handler.go respondWithBatchTooLarge (BatchRequestLimit, default 1000);
    # bor is geth's fork and answers the same (its --rpc.batchlimit defaults to 100).
    "geth": BatchBody("array", -32600, "batch too large"),
    "bor": BatchBody("array", -32600, "batch too large"),
    # erigontech/erigon#17245 (v3.1, --rpc.batch.limit default 100): one object, not an array.
    "erigon": BatchBody("object", -32000, "batch limit {n} exceeded (can increase by "
                        "--rpc.batch.limit). Requested batch of size: {size}"),
    # NodeReal MegaNode's error table ("Occurs when hitting the 500 requests limitation").
    "nodereal": BatchBody("object", -32005, "batch size exceed limit {n}"),
    # paritytech/jsonrpsee#1107 (reth's server): the limit is in the error's data.
    "jsonrpsee": BatchBody("object", -32010, "The batch request was too large",
                           "Exceeded max limit of {n}"),
}  # fmt: skip


def batch_refusal(provider: str, first_id: Any, n: int, size: int) -> Any:
    """The whole answer a node with cap `n` gives a batch of `size` calls."""
    body = BATCH_BODIES[provider]
    error: dict[str, Any] = {"code": body.code, "message": body.text.format(n=n, size=size)}
    if body.data is not None:
        error["data"] = body.data.format(n=n, size=size)
    if body.shape == "array":
        return [{"jsonrpc": "2.0", "id": first_id, "error": error}]
    return {"jsonrpc": "2.0", "id": None, "error": error}
