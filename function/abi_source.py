"""Read a document (the ABI, the relayers file) from Cloud Storage or a local path."""

from __future__ import annotations

from pathlib import Path

from .errors import AbiError, RelayerError


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
    from google.cloud import storage  # type: ignore[attr-defined]

    bucket, _, name = uri[len("gs://") :].partition("/")
    try:
        data: bytes = storage.Client().bucket(bucket).blob(name).download_as_bytes(timeout=30)
        return data
    except gexc.NotFound:
        raise error(f"{setting} {uri} does not exist: upload it or fix {setting}") from None
    except gexc.Forbidden:
        raise error(
            f"{setting} {uri} is not readable: grant the relayer's service account "
            "roles/storage.objectViewer on the bucket"
        ) from None
    except gexc.GoogleAPICallError as e:
        raise error(f"{setting} {uri} could not be read from Cloud Storage: {e}") from e
