"""Where the campaign's slow network starts holding a publish request: at the HTTP/2 DATA
frame with the messages, so the headers (and the deadline) go ahead (devstack/faults/h2hold.py)."""

from __future__ import annotations

import pytest

from devstack.faults.h2hold import FrameWalker, split_at_frame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PATTERN = b'"event_id"'


def frame(kind: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, 0]) + (1).to_bytes(4, "big") + payload


HEADERS = frame(1, b"h" * 20)
DATA = frame(0, b'{"data": ' + PATTERN + b": 1}")
OTHER = frame(0, b"no messages here")


@pytest.mark.parametrize(
    ("chunks", "cut"),
    [
        ([PREFACE + HEADERS + DATA], len(PREFACE) + len(HEADERS)),  # one send: split there
        ([PREFACE + HEADERS[:5], HEADERS[5:] + DATA], len(HEADERS) - 5),  # a header cut in two
        ([PREFACE + HEADERS + DATA[:4], DATA[4:]], 0),  # the frame began earlier: hold it all
        ([PREFACE, DATA], 0),  # the chunk is the frame: hold all of it
        ([PREFACE + OTHER + HEADERS + DATA], len(PREFACE) + len(OTHER) + len(HEADERS)),
        ([PREFACE + frame(1, PATTERN)], 0),  # the pattern in a HEADERS frame: hold the chunk
    ],
    ids=["together", "header-split", "data-split", "alone", "after-others", "in-headers"],
)
def test_the_hold_starts_at_the_data_frame_with_the_pattern(chunks: list[bytes], cut: int) -> None:
    walker = FrameWalker()
    for chunk in chunks[:-1]:
        walker.frames(chunk)
    last = chunks[-1]

    assert split_at_frame(walker.frames(last), last, PATTERN) == cut
