"""The fault-injecting JSON-RPC proxy in front of anvil (proxy.py), with the real providers'
error bodies (bodies.py), the per-call plan (calls.py) and the whole-request faults
(replies.py)."""

from devstack.rpcproxy.proxy import RpcProxy

__all__ = ["RpcProxy"]
