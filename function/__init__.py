"""EVM contract events to Google Cloud Pub/Sub, one scheduled run at a time."""

__version__ = "0.1.0"
