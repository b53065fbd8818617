"""One destination's dry-run double in its own process: `python -m bench.doubles MODULE`
(the double its plug-in names, `DestinationPlugin.double`).

The same double `make dev` uses (the one the destination's plug-in names: a stand-in of our
own, or the service on moto's server with a read-back), so any destination in the registry
can be measured with nothing written for it here. Kept out of the benchmark's process, as
`bench.servers` is, so moto (which adds a botocore handler when imported) and the servers'
threads never run inside a measurement.

Prints one JSON line with the endpoint variables the app's client needs, then answers each
`count` on standard input with the events received so far (after a read-back); stops at EOF.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import cast

from devtools import hooks
from devtools.localstack import doubles
from devtools.offline import HOST
from devtools.queue_spec import stage_environment


def main(argv: list[str]) -> int:
    from devtools.standins.moto_proxy import strict_moto

    [module] = argv
    with strict_moto(HOST) as moto:  # what AWS would refuse is refused, as in `make dev`
        return _serve(module, moto.url)


def _serve(module: str, moto_url: str) -> int:
    lock = threading.Lock()
    received: list[tuple[str, str]] = []

    def receive(endpoint_id: str, event_id: str, event: object, raw: object) -> None:
        with lock:
            received.append((endpoint_id, event_id))

    # The dev stage under the benchmark's own environment (which the parent's app reads).
    environment = {**stage_environment("dev"), **os.environ}
    double = cast(doubles.Double, hooks.module(module, module))
    running = double.start(doubles.Setup(environment, HOST, 0, moto_url, receive))
    try:
        print(json.dumps({"environment": running.environment}), flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                if running.read_back is not None:
                    running.read_back()
                with lock:
                    numbers = {"received": len(received), "distinct": len(set(received))}
                print(json.dumps(numbers), flush=True)
    finally:
        if running.standin is not None:
            running.standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
