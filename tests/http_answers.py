"""What the JSON-RPC client reads of a `requests` answer, for scripted HTTP sessions: the
status, the headers, and the body it reads in one read (`stream=True`, `raw.read()`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Body:
    content: bytes

    def read(self, decode_content: bool = False) -> bytes:
        return self.content

    def release_conn(self) -> None:
        pass


@dataclass
class Response:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    @property
    def text(self) -> str:
        return self.content.decode()

    @property
    def raw(self) -> Body:
        return Body(self.content)

    def close(self) -> None:
        pass
