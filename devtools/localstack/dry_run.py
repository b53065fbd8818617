"""The local stack's dry run: a local stand-in for every configured destination, and one
JSON Lines record of what each received.

How each destination is stood in for and read back is its double's business (the module its
plug-in names, `DestinationPlugin.double`): a stand-in of our own for a service moto lacks,
or the service on moto's server with a read-back. Each delivered event becomes one line in the
log and one line on the console, and is offered to the demo page in Pinpoint's event shape
whatever the destination.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from chalicelib.destinations import registry
from devtools.localstack import doubles
from devtools.localstack.doubles import Running, Setup

Say = Callable[[str], None]


class DryRun:
    """Starts the doubles for `destinations` and records what they receive."""

    def __init__(
        self,
        destinations: tuple[str, ...],
        stage_env: Mapping[str, str],
        log_path: Path,
        say: Say,
        moto_url: str,
        host: str,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        """`ports`: a stand-in's port by its option name (`pinpoint`, `profiles`); a stand-in
        not named gets a free port."""
        self.destinations = destinations
        self._env = stage_env
        self._say = say
        self._moto_url = moto_url
        self._host = host
        self._ports = dict(ports or {})
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._delivered: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, Running] = {}

    def start(self) -> dict[str, str]:
        """Start every double; return the endpoint variables the app's clients need."""
        registry.configure(self.destinations, self._env)  # a wrong setting fails here
        endpoints: dict[str, str] = {}
        for name in self.destinations:
            double = doubles.double(name)
            port = doubles.port(name)
            running = double.start(
                Setup(
                    environment=self._env,
                    host=self._host,
                    port=self._ports.get(port.option, 0) if port else 0,
                    moto_url=self._moto_url,
                    receive=functools.partial(self._record, name),
                )
            )
            self._running[name] = running
            if running.read_back is not None:
                self._watch(running.read_back)
            endpoints.update(running.environment)
        return endpoints

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for running in self._running.values():
            if running.standin is not None:
                running.standin.stop()
        self._log.close()

    def delivered(self, destination: str | None = None) -> list[dict[str, Any]]:
        """What arrived so far, at one destination or at all of them, in order."""
        with self._lock:
            return [
                record
                for record in self._delivered
                if destination is None or record["destination"] == destination
            ]

    def standin(self, destination: str) -> Any:
        """The destination's stand-in once started, or None (tests plan faults on it)."""
        running = self._running.get(destination)
        return None if running is None else running.standin

    def simulate_outage(self, calls: int) -> None:
        """The next `calls` calls fail at the stand-in destinations (moto's cannot)."""
        for running in self._running.values():
            if running.standin is not None:
                running.standin.fail_next_requests(500, calls)

    # Recording ------------------------------------------------------------------------------

    def _record(
        self, destination: str, endpoint_id: str, event_id: str, event: dict[str, Any], raw: Any
    ) -> None:
        line = {
            "destination": destination,
            "delivered_at": datetime.now(UTC).isoformat(),
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event": event,
            "received": raw,
        }
        with self._lock:
            self._log.write(json.dumps(line, sort_keys=True) + "\n")
            self._log.flush()
            self._delivered.append({**line, "endpoint": {}})
        self._say(
            f"{destination} <- {event.get('EventType')} endpoint={endpoint_id}"
            f" attrs={json.dumps(event.get('Attributes', {}), sort_keys=True)}"
            f" metrics={json.dumps(event.get('Metrics', {}), sort_keys=True)}"
            f" at={event.get('Timestamp')}"
        )

    def _watch(self, read_back: Callable[[], None]) -> None:
        def loop() -> None:
            while not self._stopping.wait(0.5):
                try:
                    read_back()
                except Exception as error:  # a dry run reports, it never stops the stack
                    self._say(f"dry run: reading back failed: {error}")

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)
