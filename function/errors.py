"""Every error the relayer raises on purpose, with the exit code it maps to.

    RelayerError                  base; exit code 1 unless a subclass says otherwise
    ├── ConfigError               a setting is missing or malformed (exit 2)
    ├── DeploymentError           the world disagrees with the settings (exit 2):
    │   ├── AbiError              ABI unreadable, malformed, or without the selected events
    │   ├── ChainMismatchError    the node's chain id differs from CHAIN_ID
    │   └── TopicNotFoundError    the Pub/Sub topic does not exist
    ├── RpcError                  the JSON-RPC endpoint failed or answered nonsense
    │   ├── RpcCallError          the node refused a request for good (bad parameters, key)
    │   ├── RangeTooLargeError    eth_getLogs refused for its range or result size
    │   └── ChainMovedError       the checkpoint block was replaced while a run read past it
    ├── DecodeError               a log the ABI cannot place (several events or none) or decode
    ├── PublishError              Pub/Sub did not accept every message in time
    │   ├── NotSentError          a request was not sent: its deadline had passed
    │   └── InDoubtError          a request given up on may still be accepted until `until`
    ├── StateError                Firestore failed or holds something unexpected
    │   └── LeaseLostError        another run took over this relayer's lease
    ├── ReorgError                the relayed chain is no longer the node's chain
    └── StoppedError              a wait was cut short because the run was asked to stop

Messages are written for the operator who reads one log line: they name the setting or
component and the fix, and never contain an RPC URL beyond its host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from function.core.provider_errors import Failure


class RelayerError(Exception):
    """Base of the relayer's own errors."""

    exit_code = 1


class ConfigError(RelayerError):
    """A configuration variable is missing or malformed; `problems` lists every one found,
    each a line that starts with the variable (the message joins them)."""

    exit_code = 2

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)

    @classmethod
    def of(cls, problems: Sequence[str]) -> ConfigError:
        return cls("\n".join(problems), problems)

    def prefixed(self, prefix: str) -> ConfigError:
        """The same problems, each line prefixed (the relayer of a RELAYER_CONFIG file)."""
        return ConfigError.of([f"{prefix}{p}" for p in self.problems])


class DeploymentError(RelayerError):
    """The deployment around the relayer contradicts its configuration."""

    exit_code = 2


class AbiError(DeploymentError):
    """The ABI cannot be read or lacks what the configuration selects."""


class ChainMismatchError(DeploymentError):
    """The RPC endpoint serves another chain than CHAIN_ID."""


class TopicNotFoundError(DeploymentError):
    """The configured Pub/Sub topic does not exist."""


class RpcError(RelayerError):
    """The JSON-RPC endpoint failed, refused or answered something that cannot be right."""


class ChainMovedError(RpcError):
    """The range read does not descend from the checkpoint: the chain reorganised between the
    run's checkpoint check and its read; the run checks again (and rewinds) before relaying."""


class RpcCallError(RpcError):
    """The node refused a request for good (bad parameters, a refused key)."""

    def __init__(self, host: str, method: str, code: int | None, message: str) -> None:
        super().__init__(f"{method} failed on {host}: {message} (code {code})")
        self.host = host
        self.method = method
        self.code = code


class RangeTooLargeError(RpcError):
    """The provider refused an eth_getLogs range or result size; `failure` has its hint."""

    def __init__(self, host: str, message: str, failure: Failure) -> None:
        super().__init__(f"eth_getLogs refused by {host}: {message}")
        self.host = host
        self.failure = failure


class DecodeError(RelayerError):
    """A log of a configured contract is no single event of the ABI, or does not fit it."""


class PublishError(RelayerError):
    """Pub/Sub did not accept every message before the deadline."""


class MessageBuildError(Exception):
    """A message could not be built from its event (a value no message can carry): it and
    the events after it in the part were not sent."""


class NotSentError(PublishError):
    """A request was not sent: its deadline (the lease's end, or a stop) had passed."""


class InDoubtError(PublishError):
    """The run stopped waiting for a request still in flight: Pub/Sub may yet accept it, up
    to the gRPC deadline it was sent with (`until`, monotonic)."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


class StateError(RelayerError):
    """Firestore could not be read or written."""


class LeaseLostError(StateError):
    """Another run now holds this relayer's lease; this run must stop writing."""


class ReorgError(RelayerError):
    """The chain reorganised under blocks this relayer already relayed."""


class StoppedError(RelayerError):
    """The run was asked to stop (SIGTERM) while it waited on the network: not a failure,
    the run commits what it has and ends interrupted."""
