"""Review 13b: the dispatcher's lazy build of a part's messages (779e6ac), over the
in-memory fakes.

Each test below fails on the branch as committed and describes, in its docstring, what the
run gets wrong and which part of docs/CONTRACT.md it breaks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from eth_utils.crypto import keccak

from devstack.sim.events import ABI, CONTRACT, run_over, word
from devstack.sim.fake_chain import FakeChain
from devstack.sim.fake_sink import FakeSink
from devstack.sim.fake_state import FakeState
from function.core.abi import event_catalogue
from function.core.messages import Message
from function.core.model import Event
from function.core.summary import FAILED
from function.errors import AbiError
from function.run import dispatch as dispatch_module
from function.run.relay import Outcome

# An event whose data parameter's name is a lone surrogate ("\ud800" in the ABI's JSON):
# it is not part of the signature, so the ABI loads, but no message of it can be encoded
# as UTF-8 (`encode`: json.dumps(ensure_ascii=False).encode()).
UNENCODABLE: dict[str, Any] = {
    "type": "event",
    "name": "Odd",
    "anonymous": False,
    "inputs": [{"name": "\ud800", "type": "uint256", "indexed": False}],
}
ENCODABLE: dict[str, Any] = {**UNENCODABLE, "inputs": [{"name": "n", "type": "uint256",
                                                          "indexed": False}]}  # fmt: skip
ODD = "0x" + keccak(text="Odd(uint256)").hex()
TICK = "0x" + keccak(text="Tick(uint256,uint256)").hex()


@pytest.fixture(autouse=True)
def odd_fails_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event `Odd` cannot become a message (the ABI check now refuses the name that made
    it so at start: the last test; the dispatcher must still cope with a build that fails)."""
    real = dispatch_module.build_message

    def failing(e: Event, **kw: bool) -> Message:
        if e.name == "Odd":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(e, **kw)

    monkeypatch.setattr(dispatch_module, "build_message", failing)


def run(chain: FakeChain, state: FakeState, sink: FakeSink) -> Outcome:
    specs = event_catalogue([*ABI, ENCODABLE], (), "sim")
    return run_over(
        chain, state, sink, specs, batch_size=100, checkpoint_interval=100, lease_s=300.0
    )


def odd_block_world() -> tuple[FakeChain, FakeState, FakeSink]:
    """One block: 1,200 `Tick`s, then one log whose message cannot be built."""
    chain = FakeChain()
    ticks = [(CONTRACT, [TICK, word(i)], word(7)) for i in range(1_200)]
    chain.mine_logs([[*ticks, (CONTRACT, [ODD], word(1))]])
    return chain, FakeState(), FakeSink()


def test_a_message_that_cannot_be_built_does_not_republish_the_part_on_every_run() -> None:
    """A block holds 1,200 events of `Tick` and then one log whose message cannot be
    built. Before 779e6ac every message was built before the first
    request went out: the run failed with nothing published. Now the first requests are
    on the wire before the failing build, Pub/Sub accepts them, and the build's error is
    re-raised out of `Dispatcher.send`, so `_publish_chunk` never records them (no block
    record, no checkpoint): the next run publishes them again, and so does every run after
    it until an operator intervenes.

    CONTRACT §7.2: an event Pub/Sub accepted must be recorded so that no later run
    publishes it again (a refused *request* is handled that way: the prefix is recorded
    and committed before the run fails); §7.4 allows duplicates only for a run killed
    after its last commit, at most one interval. Here every retry of a failing run
    duplicates the same 1,000 events, without bound."""
    chain, state, sink = odd_block_world()
    first = run(chain, state, sink)
    assert first.summary.outcome == FAILED
    second = run(chain, state, sink)
    assert second.summary.outcome == FAILED
    counts = Counter(a.message.attributes["event_id"] for a in sink.accepted)
    repeated = {k: n for k, n in counts.items() if n > 1}
    assert not repeated, f"{len(repeated)} events published twice by two failing runs"


def test_a_run_failed_by_a_message_build_counts_what_pub_sub_accepted() -> None:
    """Same world: the failing run's summary says `events_published: 0` while Pub/Sub
    accepted 1,000 of its messages. The build's error escapes `Dispatcher.send`, so
    `_publish_chunk` never reaches its count ("accepted, whatever the commits do", d6d5c03).

    CONTRACT §2: every run ends with a summary whose `events_published` says what it
    published; the operator of a failed run is told nothing went out, then finds 1,000
    messages (and, with the defect above, 1,000 more per retry). Before 779e6ac nothing
    was published, so 0 was true."""
    chain, state, sink = odd_block_world()
    failed = run(chain, state, sink)
    assert failed.summary.outcome == FAILED
    assert failed.summary.events_published == len(sink.accepted)


def test_an_abi_whose_parameter_name_cannot_be_encoded_is_refused_at_start() -> None:
    """(Not a regression of this branch: the old code accepts it too.) A parameter name that
    is a lone surrogate is outside the signature, so the ABI loads, yet no message of the
    event can ever be encoded: every log of it fails the run (with RELAYER_DEADLETTER_TOPIC
    too: the failure is in the message, not the decode). CONTRACT §2: a malformed ABI is
    exit 2 at start, one line naming it; and with the lazy build above each failing run
    also republishes what came before the log."""
    with pytest.raises(AbiError, match="malformed event"):
        event_catalogue([*ABI, UNENCODABLE], (), "sim")
