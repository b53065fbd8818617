"""The HTTP server every local stand-in and the demo page share.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """A threaded server on loopback that stays quiet when a client hangs up (a read
    timeout, a reload, a closed tab do exactly that) and never keeps the process alive."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
