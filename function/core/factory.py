"""RELAYER_FACTORY (docs/CONTRACT.md §1): the contracts a factory's event names.

`{factory address}:{event}:{parameter}`, e.g. `0x5C69…aA6f:PairCreated:pair`: every address
that event of the factory names in that parameter is relayed from the block of its creation
on, with the events of ABI_URI (which then lists the child's ABI, and the factory's for the
creation event). Two steps, both pure:

- here, `parse_factory`, read with the settings (no ABI yet: `function.config` uses it, so
  this module imports nothing but the errors);
- `creations.factory_of`, the check against the ABI once it is loaded (the event exists,
  the parameter is an address), which compiles the creation event for reading its logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from function.errors import ConfigError

VARIABLE = "RELAYER_FACTORY"
_NAME = r"\s*([A-Za-z_$][A-Za-z0-9_$]*)\s*"
_FORM = re.compile(rf"\s*(0x[0-9a-fA-F]{{40}})\s*:{_NAME}:{_NAME}")
_EXAMPLE = (
    "expected {factory address}:{event}:{parameter}, e.g. "
    "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f:PairCreated:pair"
)


@dataclass(frozen=True)
class FactorySetting:
    """RELAYER_FACTORY as configured, before the ABI is known."""

    address: str  # lowercase
    event: str
    parameter: str

    @property
    def text(self) -> str:
        """The setting as stored with the state and shown in status."""
        return f"{self.address}:{self.event}:{self.parameter}"


def parse_factory(raw: str) -> FactorySetting:
    match = _FORM.fullmatch(raw)
    if match is None:
        raise ConfigError(f"{VARIABLE} is invalid ({raw.strip()!r}): {_EXAMPLE}")
    return FactorySetting(match.group(1).lower(), match.group(2), match.group(3))
