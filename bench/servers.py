"""The local stack's servers in their own process: moto's SQS (behind the strict proxy, as in
`make dev`) and the Pinpoint stand-in.

`make dev` runs both in one process beside the pixel and the consumer; so does the
throughput benchmark, so the consumer's process is not sharing its interpreter lock with
them. Prints one JSON line with both URLs, serves until its standard input closes, then
prints one JSON line with the CPU time it used and how many events the stand-in accepted.
"""

from __future__ import annotations

import json
import resource
import sys

from devtools.standins.pinpoint import PinpointStandIn


def main(argv: list[str]) -> int:
    from devtools.standins.moto_proxy import strict_moto

    application_id = argv[0]
    with strict_moto() as sqs, PinpointStandIn(applications=[application_id]) as standin:
        print(json.dumps({"sqs": sqs.url, "pinpoint": standin.url}), flush=True)
        for line in sys.stdin:  # "count" asks for the numbers so far; EOF stops
            if line.strip() == "count":
                print(json.dumps(_numbers(standin)), flush=True)
        numbers = _numbers(standin)
    print(json.dumps(numbers), flush=True)
    return 0


def _numbers(standin: PinpointStandIn) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "accepted_events": len(standin.accepted_events),
        "put_events_requests": len(standin.requests),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
