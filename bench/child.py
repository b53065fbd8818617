"""A fresh process that serves hits and reports its peak memory (`bench.processes` runs it).

    python -m bench.child app 1000    # imports app.py, serves 1,000 hits (SQS in-process)
    python -m bench.child bare 1000   # imports chalice and boto3, serves the bare route
    python -m bench.child bare-chalice-only 1000   # the same without boto3 (for reference)
    python -m bench.child enqueue 1000  # a bare route that sends each hit with boto3

It prints one JSON object on its original stdout; everything the app writes goes to
/dev/null. Kept small: every module imported here counts in the peak it reports.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, cast

# What the enqueue baseline sends for every hit: a message the size of the app's.
ENQUEUED_BODY = json.dumps(
    {
        "version": 1,
        "event_id": "0c1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6",
        "event_type": "purchase",
        "endpoint_id": "ep-12345",
        "timestamp": "2026-11-28T11:59:00.000Z",
        "received_at": "2026-11-28T11:59:00.100Z",
        "session": None,
        "attributes": {"plan": "gold", "page": "/checkout/confirm"},
        "metrics": {"price": 42.5},
        "user_id": None,
        "user_attributes": {},
        "endpoint_attributes": {},
        "endpoint_metrics": {},
    },
    separators=(",", ":"),
)


def main(argv: list[str]) -> int:
    which, hits = argv[0], int(argv[1])
    result_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    started = time.perf_counter()
    if which == "app":
        from bench.fakes import aws_in_process

        with aws_in_process(keep_bodies=False):
            from app import app as handler

            served = _serve(handler, hits)
    elif which == "enqueue":
        import boto3

        from bench.fakes import Handler, InProcessSqs
        from bench.hits import minimal_enqueue_app

        # SQS answered in-process, as for the app: the same client, model and requests.
        session = boto3.DEFAULT_SESSION = boto3.session.Session()
        session.events.register("before-send.sqs", cast(Handler, InProcessSqs(keep_bodies=False)))
        served = _serve(minimal_enqueue_app(ENQUEUED_BODY), hits)
    elif which in ("bare", "bare-chalice-only"):
        if which == "bare":
            import boto3
        import chalice  # noqa: F401

        from bench.hits import bare_app

        served = _serve(bare_app(), hits)
    else:
        raise SystemExit(
            f"unknown process kind {which!r}; use app, enqueue, bare or bare-chalice-only"
        )
    peak_kib = peak_rss_kib()
    sys.stdout.flush()
    os.write(
        result_fd,
        json.dumps(
            {
                "kind": which,
                "hits": hits,
                "answered_gif": served,
                "peak_rss_kib": peak_kib,
                "seconds": time.perf_counter() - started,
            }
        ).encode()
        + b"\n",
    )
    return 0


def peak_rss_kib() -> int:
    """This process's peak resident set size, in KiB.

    /proc/self/status `VmHWM` is the high-water mark of this program's own memory map. The
    usual `resource.getrusage(...).ru_maxrss` is not: Linux carries it across execve, so a
    process spawned from a large parent reports the parent's size (seen here: 38 MB for a
    15 MB process). `ru_maxrss` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _serve(handler: Callable[[dict[str, Any], Any], dict[str, Any]], hits: int) -> int:
    """Call a Chalice app as Lambda does, `hits` times; count the answers carrying the GIF."""
    from bench.hits import answered_gif, proxy_event, sample_queries

    return sum(answered_gif(handler(proxy_event(query), None)) for query in sample_queries(hits))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
