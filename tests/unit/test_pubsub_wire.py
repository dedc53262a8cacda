"""The publish request written by hand (`pubsub_wire`) is what the protobuf library writes and
reads: a message's data, attributes and ordering key, the request's topic, the answer's ids."""

from __future__ import annotations

from google.pubsub_v1 import types

from function.adapters.pubsub_wire import encode_message, encode_request, message_ids

PubsubMessage = types.PubsubMessage.pb()
PublishRequest = types.PublishRequest.pb()
PublishResponse = types.PublishResponse.pb()


def test_a_request_parses_as_the_library_reads_it() -> None:
    big = "é" * 20_000  # lengths past one varint byte, past 16 KiB
    messages = [
        (b'{"a":1}', {"event": "Swap", "event_id": "31337:0xab:0", "contract": "0xC"}, "31337:0xC"),
        (big.encode(), {"event": "Swap", "note": big}, ""),
        (b"", {}, ""),
        (b"x" * 200, {"k" * 200: "v" * 130, "": "", "ce-time": "2026-12-01T00:00:00Z"}, "k"),
        (b"y", {big[:8_000]: big, "removed": "false"}, big[:100]),  # a key past 16 KiB too
    ]
    for _ in range(2):  # the second time from the kept entries
        body = encode_request("projects/p/topics/t", [encode_message(*m) for m in messages])
        parsed = PublishRequest.FromString(body)
        assert parsed.topic == "projects/p/topics/t"
        got = [(m.data, dict(m.attributes), m.ordering_key) for m in parsed.messages]
        assert got == messages


def test_the_answer_gives_the_ids_in_order() -> None:
    answer = PublishResponse(message_ids=["1", "22", "3" * 300]).SerializeToString()
    assert message_ids(answer) == ["1", "22", "3" * 300]
    assert message_ids(b"") == []


def test_a_messages_size_counts_each_attribute_and_its_framing() -> None:
    from function.core.batches import message_size
    from function.core.messages import Message

    attributes = {"event": "Swap", "event_id": "31337:0xab:0", "é" * 3: "ü" * 5, "": ""}
    message = Message(b"0123456789", attributes, "31337:0xC")
    framing = sum(len(k) + len(v) + 4 for k, v in attributes.items())
    assert message_size(message) == 10 + framing + len("31337:0xC") + 16
