"""The wiring: what the consumer is built from, and that `reset` forgets all of it."""

from __future__ import annotations

import pytest

from chalicelib import runtime


def test_the_consumer_runs_on_one_pool_that_reset_shuts_down() -> None:
    consumer = runtime.batch_delivery()
    pool = consumer._pool  # the pool settling and destinations share
    assert pool is not None
    assert pool.submit(lambda: 7).result() == 7
    runtime.reset()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(lambda: 7)
    rebuilt = runtime.batch_delivery()
    assert rebuilt is not consumer
    assert rebuilt._pool is not None
    assert rebuilt._pool is not pool
