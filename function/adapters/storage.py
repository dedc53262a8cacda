"""Read a document (the ABI, the relayers file) from Cloud Storage or a local path.

Every error of the Storage and auth libraries becomes one of the relayer's own, naming the
setting and the fix: a missing object, a refused read, a bad bucket name or absent
credentials are deployment errors (`error`, exit 2); an outage (retries exhausted,
transport failures, anything unexpected) is a plain `RelayerError` (exit 1: the next run
retries). Retries stop after READ_DEADLINE_S, so an outage cannot eat the task's timeout
(google-cloud-storage alone retries for 120 s).
"""

from __future__ import annotations

from pathlib import Path

from function.errors import AbiError, RelayerError
from function.redact import scrub

READ_DEADLINE_S = 10.0  # all attempts of one read; a scheduled run retries soon after
_ATTEMPT_TIMEOUT_S = (5.0, 10.0)  # connect, read of one HTTP attempt


def read_uri(uri: str, setting: str, error: type[RelayerError] = AbiError) -> bytes:
    """The bytes at `gs://bucket/object` or a local path; `error` names `setting` and the fix."""
    if uri.startswith("gs://"):
        return _read_gcs(uri, setting, error)
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    try:
        return path.read_bytes()
    except OSError as e:
        raise error(
            f"{setting} {uri} cannot be read: {e.strerror or e}: point it at a readable file "
            "or a gs://bucket/object"
        ) from None


def read_abi(uri: str) -> bytes:
    """The raw bytes at ABI_URI, or an `AbiError` that says what to fix."""
    return read_uri(uri, "ABI_URI")


def _read_gcs(uri: str, setting: str, error: type[RelayerError]) -> bytes:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth
    from google.cloud import storage  # type: ignore[attr-defined]
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket_name, _, name = uri[len("gs://") :].partition("/")
    where = f"{setting} {uri}"
    try:
        client = storage.Client()
    except auth.DefaultCredentialsError as e:
        raise error(
            f"{where} cannot be read: no Google credentials ({_short(e)}): run as a service "
            "account, or set GOOGLE_APPLICATION_CREDENTIALS (STORAGE_EMULATOR_HOST locally)"
        ) from e
    except Exception as e:
        raise error(f"{where} cannot be read: no Storage client ({_cause(e)})") from e
    try:
        blob = client.bucket(bucket_name).blob(name)
    except ValueError as e:  # the library checks bucket names before any request
        raise error(f"{where} names an invalid bucket: {e}: fix {setting}") from e
    try:
        data: bytes = blob.download_as_bytes(
            timeout=_ATTEMPT_TIMEOUT_S, retry=DEFAULT_RETRY.with_timeout(READ_DEADLINE_S)
        )
        return data
    except gexc.NotFound:
        raise error(f"{where} does not exist: upload it or fix {setting}") from None
    except gexc.Forbidden:
        raise error(
            f"{where} is not readable: grant the relayer's service account "
            "roles/storage.objectViewer on the bucket"
        ) from None
    except gexc.RetryError as e:  # a GoogleAPIError, not a GoogleAPICallError
        cause = type(e.cause).__name__ if e.cause is not None else "no answer"
        raise RelayerError(
            f"{where} could not be read from Cloud Storage within {READ_DEADLINE_S:g} s "
            f"({cause}): the next run will retry; check Cloud Storage and the network"
        ) from e
    except gexc.GoogleAPICallError as e:  # an answer that retrying would not change
        raise error(f"{where} could not be read from Cloud Storage: {_short(e)}") from e
    except auth.TransportError as e:  # fetching a token failed: the network, not the setup
        raise RelayerError(
            f"{where} could not be read: getting a Google token failed ({_short(e)}): "
            "the next run will retry"
        ) from e
    except auth.GoogleAuthError as e:
        raise error(f"{where} cannot be read: Google credentials refused: {_short(e)}") from e
    except Exception as e:  # requests' errors, checksum mismatches, ...: with context
        raise RelayerError(
            f"{where} could not be read from Cloud Storage ({_cause(e)}): the next run will retry"
        ) from e


def _cause(e: BaseException) -> str:
    return f"{type(e).__name__}: {_short(e)}"


def _short(e: BaseException, limit: int = 160) -> str:
    """A library's message on one short line (some span several lines of HTTP detail)."""
    text = " ".join(scrub(str(e)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
