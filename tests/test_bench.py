"""python -m adamlib.bench: a smoke test of the quick mode (schema, positive numbers; no timing asserts)."""
from __future__ import annotations

import json

import pytest

from adamlib import bench


def test_parse_size():
    assert bench.parse_size("200x50k") == (200, 50_000)
    assert bench.parse_size("1x10M") == (1, 10_000_000)
    assert bench.parse_size("3x17") == (3, 17)


def test_bytes_per_param_is_the_roofline_table():
    b = {a.name: a.bytes_per_param for a in bench.ALGORITHMS}
    assert b == {"SGD": 20, "Momentum": 20, "Adagrad": 20, "RMSProp": 20, "Adam": 28, "AdamW": 28,
                 "AMSGrad": 36, "AdaMax": 28}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "out.json"
    assert bench.main(["--quick", "--algorithms", "Adam", "RMSProp", "--json", str(path)]) == 0
    return json.loads(path.read_text())


def test_quick_run_schema(quick):
    assert quick["schema"] == bench.SCHEMA
    assert quick["settings"]["quick"] and quick["settings"]["interleaved"]
    assert quick["machine"]["torch"] and quick["machine"]["cpu_count"] >= 1
    assert [c["size"] for c in quick["cases"]] == bench.QUICK_SIZES
    for case in quick["cases"]:
        assert case["stream_gbps"] > 0
        libs_paths = {(r["algorithm"], r["library"], r["path"]) for r in case["results"]}
        assert ("Adam", "torch", "fused") in libs_paths and ("RMSProp", "torch", "fused") not in libs_paths
        assert ("RMSProp", "adamlib", "fused") in libs_paths
        for r in case["results"]:
            for key in ("median_ms", "min_ms", "max_ms", "gbps", "ratio_vs_torch_best",
                        "fraction_of_stream", "bound_ms"):
                assert r[key] > 0, (key, r)
            assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        for algo in ("Adam", "RMSProp"):
            torch_ratios = [r["ratio_vs_torch_best"] for r in case["results"]
                            if r["algorithm"] == algo and r["library"] == "torch"]
            assert min(torch_ratios) == pytest.approx(1.0)


def test_table_renders(quick):
    text = bench.table(quick)
    assert "x torch best" in text and "Adam" in text and "loadavg" in text


def test_on_a_gpu_adamlibs_triton_kernel_meets_torchs_kernel(monkeypatch):
    """Where torch has a kernel, a GPU table also times adamlib's Triton kernel for it."""
    from adamlib.optim import _fused
    monkeypatch.setattr(_fused, "triton_available", lambda: True)
    adam, rmsprop = bench.ALGORITHM_BY_NAME["Adam"], bench.ALGORITHM_BY_NAME["RMSProp"]
    gpu = {(lib, path): kw for lib, path, kw in bench.paths(adam, "cuda")}
    assert gpu[("adamlib", "fused-triton")] == dict(fused=True, _fused_backend="triton")
    assert ("adamlib", "fused") in gpu and ("torch", "fused") in gpu
    # RMSProp's fused path already is the Triton kernel; a CPU table has no Triton rows
    assert ("adamlib", "fused-triton") not in {(l, p) for l, p, _ in bench.paths(rmsprop, "cuda")}
    assert all(p != "fused-triton" for _, p, _ in bench.paths(adam, "cpu"))
