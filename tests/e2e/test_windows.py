"""A batch read window by window, the next window read ahead in its own thread while one is
published, on anvil and the emulators."""

from __future__ import annotations

from harness import Deployment, assert_exactly_once, payloads, relayer_doc, run_main


def test_a_batch_of_many_windows_is_relayed_exactly_once(deployment: Deployment) -> None:
    truth = deployment.make_activity(120, blocks=40)
    head = deployment.head()
    # A first window of one 2-block chunk, then wider ones (function.core.planning
    # .next_window), each after the first read ahead while the one before was published.
    run = run_main(deployment.env(RELAYER_CHECKPOINT_INTERVAL="2"))
    assert run.code == 0, run.lines
    assert run.summary["to_block"] == head and run.summary["events_published"] == len(truth)
    assert_exactly_once(payloads(deployment.topic.pull_all(at_least=len(truth))), truth)
    assert relayer_doc(deployment.relayer_id)["next_block"] == head + 1
