"""docs/RUNBOOK.md names only `relayer` commands and options that exist: an on-call engineer
copies them under pressure, so a renamed option must fail here rather than at 3 a.m."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from function.ops.cli import main

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"


def invocations() -> list[str]:
    """Every `relayer command ...` of the runbook: code blocks' lines and inline code (not
    `relayer COMMAND`, the generic form, nor a quoted message about a relayer ID)."""
    text = RUNBOOK.read_text()
    found = [" ".join(s.split()) for s in re.findall(r"`(relayer [a-z][^`]*)`", text)]
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        found += [
            line.strip() for line in block.splitlines() if line.strip().startswith("relayer ")
        ]
    return found


def test_the_runbook_uses_the_cli() -> None:
    assert len(invocations()) >= 15


@pytest.mark.parametrize("line", invocations())
def test_every_relayer_command_and_option_in_the_runbook_exists(line: str) -> None:
    words = shlex.split(line.split(" #", 1)[0].split(" > ", 1)[0])[1:]
    command = next(w for w in words if not w.startswith("-"))
    assert isinstance(main, click.Group)
    assert command in main.commands, f"relayer has no command {command!r}: {line}"
    known = {o for p in main.commands[command].params for o in p.opts} | {"--help"}
    known |= {o for p in main.params for o in p.opts}
    for word in words:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"relayer {command} has no {word}: {line}"
