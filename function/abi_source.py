"""Read the ABI document from Cloud Storage (`gs://bucket/object`) or a local path."""

from __future__ import annotations

from pathlib import Path

from .errors import AbiError


def read_abi(uri: str) -> bytes:
    """The raw bytes at ABI_URI, or an `AbiError` that says what to fix."""
    if uri.startswith("gs://"):
        return _read_gcs(uri)
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    try:
        return path.read_bytes()
    except OSError as e:
        raise AbiError(
            f"ABI_URI {uri} cannot be read: {e.strerror or e}: point it at an ABI "
            "JSON file or a gs://bucket/object"
        ) from None


def _read_gcs(uri: str) -> bytes:
    from google.api_core import exceptions as gexc
    from google.cloud import storage  # type: ignore[attr-defined]

    bucket, _, name = uri[len("gs://") :].partition("/")
    try:
        data: bytes = storage.Client().bucket(bucket).blob(name).download_as_bytes(timeout=30)
        return data
    except gexc.NotFound:
        raise AbiError(f"ABI_URI {uri} does not exist: upload the ABI or fix ABI_URI") from None
    except gexc.Forbidden:
        raise AbiError(
            f"ABI_URI {uri} is not readable: grant the relayer's service account "
            "roles/storage.objectViewer on the bucket"
        ) from None
    except gexc.GoogleAPICallError as e:
        raise AbiError(f"ABI_URI {uri} could not be read from Cloud Storage: {e}") from e
