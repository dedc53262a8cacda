"""What `scrub` hides: only URLs that may carry an RPC key (http, https, ws, wss)."""

from __future__ import annotations

import pytest

from function.redact import scrub

CASES = [
    ("https://eth.example/v2/KEY?apikey=K", "eth.example"),
    ("HTTPS://Eth.Example:8545/KEY", "eth.example:8545"),
    ("http://user:SECRET@127.0.0.1:9/v2/KEY", "127.0.0.1:9"),
    ("wss://ws.example/v3/KEY", "ws.example"),
    ("ws://127.0.0.1:8546/KEY", "127.0.0.1:8546"),
    (
        "endpoint (https://a.example/KEY), then 'http://b.example/K2'",
        "endpoint (a.example), then 'b.example'",
    ),
    (
        "ABI_URI gs://heldout-abis/escrow.json does not exist",
        "ABI_URI gs://heldout-abis/escrow.json does not exist",
    ),
    (
        "ABI_URI /srv/abis/escrow.json cannot be read",
        "ABI_URI /srv/abis/escrow.json cannot be read",
    ),
    ("file:///srv/abis/escrow.json", "file:///srv/abis/escrow.json"),
    ("RELAYER_CONFIG gs://cfg/relayers.yaml: bad", "RELAYER_CONFIG gs://cfg/relayers.yaml: bad"),
    ("git+https://host.example/KEY", "git+host.example"),  # never let a prefix hide a key
    ("no url at all", "no url at all"),
]


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_scrub_hides_only_rpc_style_urls(text: str, shown: str) -> None:
    assert scrub(text) == shown
