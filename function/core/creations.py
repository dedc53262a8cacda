"""The factory's creation event compiled against the ABI (RELAYER_FACTORY, `factory`): which
logs create children, and which address each names."""

from __future__ import annotations

from dataclasses import dataclass, replace

from function.core.catalogue import EventCatalogue
from function.core.decoding import decode_log
from function.core.factory import VARIABLE, FactorySetting
from function.core.model import RawLog
from function.errors import ConfigError, DecodeError


@dataclass(frozen=True)
class Factory:
    """The factory's creation event, compiled: which logs create children, and whom."""

    setting: FactorySetting
    topic0: str
    reads: EventCatalogue  # the creation event alone, selected: decodes its logs

    @property
    def address(self) -> str:
        return self.setting.address

    def creates(self, log: RawLog) -> bool:
        """Whether the log is the factory's creation event (by address and topic0)."""
        topics = log.get("topics") or []
        return (
            bool(topics)
            and topics[0].lower() == self.topic0
            and str(log.get("address", "")).lower() == self.address
        )

    def child_of(self, log: RawLog, chain_id: int) -> str:
        """The address a creation log names, lowercase; a `DecodeError` for a log the ABI's
        creation event does not fit (the ABI is not the factory's: nothing can be learnt)."""
        try:
            event = decode_log(log, self.reads, chain_id)
        except DecodeError as e:
            raise DecodeError(
                f"{e}: it is the factory's {self.setting.event} ({VARIABLE}), so the contract "
                "it names cannot be known; check that ABI_URI lists the factory's ABI"
            ) from e
        assert event is not None  # the catalogue selects its one event
        return str(event.args[self.setting.parameter]).lower()


def factory_of(setting: FactorySetting, catalogue: EventCatalogue, source: str) -> Factory:
    """The factory's creation event from the ABI at `source`, or a `ConfigError` naming what
    the ABI lacks: the event, the parameter, or an address type."""
    layouts = [
        (topic0, specs)
        for topic0, specs in catalogue.named.items()
        if specs[0].name == setting.event
    ]
    if not layouts:
        anonymous = any(s.name == setting.event for s in catalogue.anonymous)
        names = sorted({s.name for specs in catalogue.named.values() for s in specs})
        why = (
            "is anonymous: its logs carry no topic0 to find them by"
            if anonymous
            else f"is not in the ABI at {source}, which defines: {', '.join(names)}"
        )
        raise ConfigError(
            f"{VARIABLE} names event {setting.event}, which {why}; add the factory's ABI to "
            "ABI_URI (several URIs, comma-separated)"
        )
    if len(layouts) > 1:
        raise ConfigError(
            f"{VARIABLE} names event {setting.event}, which the ABI at {source} defines with "
            "several signatures: keep only the factory's"
        )
    topic0, specs = layouts[0]
    for spec in specs:
        found = [p for p in spec.params if p.name == setting.parameter]
        if not found:
            params = ", ".join(p.name for p in spec.params) or "none"
            raise ConfigError(
                f"{VARIABLE}: event {setting.event} has no parameter {setting.parameter}; "
                f"its parameters: {params}"
            )
        if found[0].abi_type != "address":
            raise ConfigError(
                f"{VARIABLE}: parameter {setting.parameter} of {setting.event} is "
                f"{found[0].abi_type}, not an address: name the parameter that holds the "
                "created contract's address"
            )
    # Without RELAYER_ARG_FILTERS: they choose which events are relayed, not which children.
    plain = tuple(replace(s, arg_topics=()) for s in specs)
    reads = EventCatalogue(named={topic0: plain}, anonymous=(), selected=frozenset({setting.event}))
    return Factory(setting, topic0, reads)
