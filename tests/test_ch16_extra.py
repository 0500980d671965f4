"""Chapter 16's yardstick (adamlib.bench.matched_stream_step): one pass over the optimizer's streams."""
from __future__ import annotations

import pytest
import torch

from adamlib import bench
from adamlib.optim import _fused

pytestmark = pytest.mark.skipif(not _fused.numba_available(), reason="the CPU yardstick needs numba")


@pytest.mark.parametrize("k", [1, 2, 3])
def test_yardstick_reads_every_stream_and_writes_theta_and_the_state(k):
    step = bench.matched_stream_step(3, 70_000, k)          # several tensors, several chunks
    for row in step.rows:
        row[1].fill_(1.0)                                    # g
        for s in row[2:]:
            s.fill_(2.0)                                     # state
    step()
    step()
    for row in step.rows:
        assert len(row) == k + 2
        assert torch.all(row[0] == 2.0)                      # theta += g, twice
        assert torch.all(row[1] == 1.0)                      # g is only read
        for s in row[2:]:
            assert torch.all(s == 4.0)                       # every state array read and written


def test_quick_run_stores_every_round_and_the_shared_statistic():
    result = bench.run(quick=True, algorithms=["Adam"])
    for case in result["cases"]:
        for r in case["results"]:
            assert len(r["times_ms"]) == len(r["yardstick_times_ms"]) == result["settings"]["repeats"]
            assert r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
            assert r["fraction_of_stream"] == pytest.approx(r["bound_ms"] / r["median_ms"])
            assert r["yardstick"] == "matched"
