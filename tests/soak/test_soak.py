"""The soak (issue 10, point 9): thousands of hits through the whole pipeline, with faults,
and every accepted hit accounted for at every destination.

Size and seed: `SOAK_HITS` (default 1000, sized for CI; `make soak` runs 5000) and
`SOAK_SEED` (default: a fresh one, printed so a failure can be replayed exactly).
`SOAK_FAULTS=off` runs the same traffic without any fault: the ledger must then balance
trivially, which checks the bookkeeping itself. Run with `-s` to see the table on success.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.soak.accounting import account
from tests.soak.harness import soak_pipeline
from tests.soak.plan import make_plan

DEFAULT_HITS = 1000


def test_every_accepted_hit_is_delivered_once_parked_or_queued(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = int(os.environ.get("SOAK_HITS") or DEFAULT_HITS)
    seed = int(os.environ.get("SOAK_SEED") or random.randrange(2**32))
    faults_on = os.environ.get("SOAK_FAULTS", "on").lower() not in ("off", "0", "false")
    plan = make_plan(seed, size, faults_on)
    started = time.monotonic()
    with soak_pipeline(plan, moto_url, tmp_path, monkeypatch) as soak:
        soak.run()
        seen = soak.sightings_at_end()
        proxy_calls = dict(soak.proxy.calls)
        faults_applied = dict(soak.proxy.faults_applied)
    ledger = account(seen)
    report = "\n".join(
        [
            f"soak: SOAK_SEED={seed} SOAK_HITS={size} SOAK_FAULTS={'on' if faults_on else 'off'}"
            f" in {time.monotonic() - started:.1f} s, {soak.polls} polls ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in soak.seconds.items())
            + ")",
            f"SQS calls through the proxy: {proxy_calls}; faults applied: {faults_applied}",
            f"failed batches: {dict(soak.batch_errors) or 'none'}",
            ledger.table(),
        ]
    )
    print("\n" + report)
    if ledger.problems:
        shown = "\n  ".join(ledger.problems[:40])
        more = len(ledger.problems) - 40
        pytest.fail(
            f"{report}\n{len(ledger.problems)} broken promises, by kind:\n  "
            + "\n  ".join(f"{n:5d}  {kind}" for kind, n in ledger.problem_kinds().most_common())
            + "\nthe first ones"
            f" (replay: SOAK_SEED={seed} SOAK_HITS={size}):\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
