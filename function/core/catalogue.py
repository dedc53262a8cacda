"""Which event of the ABI a log is: the candidates per topic0, the anonymous events, and the
pure choice between them (docs/CONTRACT.md §3).

- A log whose first topic is the topic0 of an event of the ABI is that event. One topic0 can
  have several layouts (ERC20's and ERC721's `Transfer` differ only in which values are
  indexed): the log's topic count chooses, then its data layout (`EventSpec.fits`).
- Any other log can only be an anonymous event: those whose topic count and data layout fit.
- Exactly one candidate: it is decoded if it is selected (RELAYER_EVENTS), ignored if not.
  Several, or none, where a selected event could be meant: a `DecodeError` saying so (the
  log is then dead-lettered, or fails the run); it is never dropped silently.
- A selected event with argument filters (RELAYER_ARG_FILTERS, `argfilters`) is relayed only
  when its log's topics match them: the queries carry the filters, and each log is checked
  again here, whatever a node answered.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from function.core.specs import EventSpec
from function.errors import DecodeError

# The `topics` of one eth_getLogs: per position the topics it may hold (any of them), None for
# any topic; positions past the end are free.
TopicQuery = tuple[tuple[str, ...] | None, ...]


@dataclass(frozen=True)
class EventCatalogue:
    """Every event of the ABI, by topic0 and anonymous, and the names selected to relay."""

    named: Mapping[str, tuple[EventSpec, ...]]  # topic0 -> its layouts, in ABI order
    anonymous: tuple[EventSpec, ...]
    selected: frozenset[str]
    chosen: bool = False  # RELAYER_EVENTS named the selected events (unset: every event)

    def relayed(self) -> Iterator[EventSpec]:
        """The selected events, every layout of each."""
        for specs in self.named.values():
            yield from (s for s in specs if s.name in self.selected)
        yield from (s for s in self.anonymous if s.name in self.selected)

    @property
    def topic_filter(self) -> list[str] | None:
        """The topic0s for eth_getLogs; None when a selected event is anonymous: its logs
        have no topic0 to filter on, so every log of the contracts must be read."""
        if any(s.name in self.selected for s in self.anonymous):
            return None
        return [t for t, specs in self.named.items() if specs[0].name in self.selected]

    @property
    def every_event(self) -> bool:
        """Whether every event of the ABI is relayed as RELAYER_EVENTS left unset does, without
        RELAYER_ARG_FILTERS: a read may then ask by address alone and apply the topic0s
        itself (`fetching`). Naming the events, even all of them, keeps the node's filter."""
        if self.chosen or self.filtered:
            return False
        return all(specs[0].name in self.selected for specs in self.named.values())

    @property
    def filtered(self) -> bool:
        """Whether RELAYER_ARG_FILTERS applies to a selected event (`argfilters`)."""
        return any(s.arg_topics for s in self.relayed())

    @property
    def log_queries(self) -> tuple[TopicQuery, ...] | None:
        """The eth_getLogs topic arrays that together return every log a selected event may
        be, sent in one batch: the topic0s of the events without filters in one, a query of
        its own for each filtered layout (one topics array cannot hold a filter per event).
        None: every log of the contracts, an anonymous event being selected (its filters then
        apply to the logs alone, in `choose`)."""
        topic0s = self.topic_filter
        if topic0s is None:
            return None
        plain = tuple(t for t in topic0s if not self.named[t][0].arg_topics)
        queries: list[TopicQuery] = [(plain,)] if plain else []
        for t in topic0s:
            for spec in self.named[t]:
                if spec.arg_topics:
                    query = _query(t, spec)
                    if query not in queries:  # layouts filtered at the same positions
                        queries.append(query)
        return tuple(queries)

    def choose(self, topics: Sequence[str], data: bytes) -> EventSpec | None:
        """The selected event a log is, None for a log of an unselected event, or a
        `DecodeError` when the ABI cannot tell which it is (its message continues a
        sentence that starts with the log: "log 7 of block 12 (0x…) ...")."""
        layouts = self.named.get(topics[0].lower()) if topics else None
        if layouts is not None:
            if layouts[0].name not in self.selected:
                return None
            spec = _named(layouts, topics, data)
            return None if spec.arg_topics and not spec.admits(topics) else spec
        if not any(s.name in self.selected for s in self.anonymous):
            raise DecodeError(
                f"has topic0 {topics[0] if topics else 'none'}, which matches no "
                "selected event of the ABI"
            )
        return self._anonymous(topics, data)

    def _anonymous(self, topics: Sequence[str], data: bytes) -> EventSpec | None:
        fitting = [s for s in self.anonymous if s.topic_count == len(topics) and s.fits(data)]
        shape = _shape(topics, data)
        if not fitting:
            first = f"a first topic {topics[0]} that is no event's topic0" if topics else None
            raise DecodeError(
                f"has {first or 'no topics'} and fits none of the ABI's anonymous events with its "
                f"{shape}: {_names(self.anonymous)}; if the contract emits events the ABI at "
                "ABI_URI lacks, add them to it"
            )
        if len(fitting) == 1:
            spec = fitting[0]
            return spec if spec.name in self.selected and spec.admits(topics) else None
        if not any(s.name in self.selected for s in fitting):
            return None  # whichever it is, it is not relayed
        raise DecodeError(_ambiguous(fitting, shape))


def query_matches(query: TopicQuery | None, topics: Sequence[str]) -> bool:
    """Whether eth_getLogs with `query` (None: no topic filter) returns a log with `topics`,
    as nodes decide it: a log with fewer topics than the query's positions never matches."""
    if query is None:
        return True
    if len(topics) < len(query):
        return False
    return all(want is None or topics[i].lower() in want for i, want in enumerate(query))


def _query(topic0: str, spec: EventSpec) -> TopicQuery:
    wanted = dict(spec.arg_topics)
    rest = (tuple(sorted(wanted[i])) if i in wanted else None for i in range(1, max(wanted) + 1))
    return ((topic0,), *rest)


def _named(layouts: tuple[EventSpec, ...], topics: Sequence[str], data: bytes) -> EventSpec:
    by_count = [s for s in layouts if s.topic_count == len(topics)]
    if len(by_count) == 1:
        return by_count[0]  # decoded as it: a decode error then says what is wrong
    name = layouts[0].name
    if not by_count:
        counts = " or ".join(str(s.topic_count - 1) for s in layouts)
        raise DecodeError(
            f"({name}) has {len(topics) - 1} indexed topics, the ABI's {name} has "
            f"{counts}: the ABI at ABI_URI does not say which of {name}'s values this "
            "contract indexes"
        )
    fitting = [s for s in by_count if s.fits(data)]
    if len(fitting) == 1:
        return fitting[0]
    shape = _shape(topics, data)
    if not fitting:
        raise DecodeError(
            f"({name}) has data that fits none of the ABI's layouts of {name} with "
            f"its {shape}: {_names(by_count)}"
        )
    raise DecodeError(_ambiguous(fitting, shape))


def _shape(topics: Sequence[str], data: bytes) -> str:
    return f"{len(topics)} topics and {len(data)} bytes of data"


def _names(specs: Sequence[EventSpec]) -> str:
    return "; ".join(s.layout for s in specs)


def _ambiguous(fitting: Sequence[EventSpec], shape: str) -> str:
    return (
        f"fits several events of the ABI with its {shape}, so which one it is cannot "
        f"be told: {_names(fitting)}"
    )
