"""Entry points of the relayer (docs/CONTRACT.md §2).

- `python main.py`: one relay run, then exit (the Cloud Run Job's command).
- `relay`: functions-framework HTTP function, one run per request (Cloud Scheduler).
- `status`: functions-framework HTTP function: /health, /status, /metrics, /.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from function.ops import app


def relay(request: Any) -> app.Response:
    """One run per POST; 200 with the run summary, 500 when the run failed.

    Anything but POST is refused before any work: an uptime check's or a crawler's GET must not
    start a run (Cloud Scheduler POSTs).
    """
    if request.method != "POST":
        body = '{"error": "POST only: each POST starts one relay run"}\n'
        return body, 405, {"Allow": "POST", "Content-Type": "application/json"}
    return app.relay_http(os.environ, request.headers)


def status(request: Any) -> app.Response:
    """Health, status, metrics and a page for people."""
    return app.status_http(os.environ, request.path, request.headers)


if __name__ == "__main__":
    sys.exit(app.run_job(os.environ))
