"""A run's first window sized by what the last run's windows learnt (the relayer document's
`density`), through `python main.py` on anvil and the emulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.rpcproxy import RpcProxy
from harness import Deployment, assert_exactly_once, payloads, relayer_doc, run_main


@pytest.fixture
def proxy(deployment: Deployment) -> Iterator[RpcProxy]:
    p = RpcProxy(deployment.anvil.rpc_url)
    yield p
    p.stop()


def _widths(proxy: RpcProxy) -> list[int]:
    return [hi - lo + 1 for lo, hi in proxy.log_ranges()]


def test_a_quiet_history_makes_the_next_scan_one_read_and_events_make_it_careful(
    deployment: Deployment, proxy: RpcProxy
) -> None:
    start = deployment.head() + 1
    deployment.mine(2000)
    env = deployment.env(RPC_URL=proxy.url(), RELAYER_BATCH_SIZE="100000", START_BLOCK=str(start))
    first = run_main(env)
    assert first.code == 0, first.lines
    assert first.summary["to_block"] == deployment.head()
    assert _widths(proxy) == [5, 80, 1360, 555]  # nothing known: 16 times the quiet stretch
    density = relayer_doc(deployment.relayer_id)["density"]
    assert density == {
        "to_block": deployment.head(),
        "blocks": 2000,
        "events": 0,
        "watched": density["watched"],
    }

    deployment.mine(30_000)
    proxy.reset_counts()
    second = run_main(env)
    assert second.code == 0, second.lines
    assert second.summary["to_block"] == deployment.head()
    assert _widths(proxy) == [30_000]  # within 16 times the 2,000 quiet blocks before
    assert relayer_doc(deployment.relayer_id)["density"]["blocks"] == 32_000

    truth = deployment.make_activity(40, blocks=4)
    proxy.reset_counts()
    third = run_main(env)
    assert third.code == 0, third.lines
    assert third.summary["events_published"] == len(truth)
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)
    density = relayer_doc(deployment.relayer_id)["density"]
    assert density["to_block"] == deployment.head() and density["events"] == len(truth)
