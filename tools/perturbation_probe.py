#!/usr/bin/env python3
"""Show that each setting of the test command's perturbed environment changes rounding here.

    .venv/bin/python tools/perturbation_probe.py

Runs a few reductions (a float32 sum of 100 000 numbers, an nn.Linear forward, float32 and
float64 matrix products in torch and in NumPy, NumPy's exp and log) in a fresh interpreter with the machine's
defaults, then with each group of settings from tasks.PERTURBED alone and with all of them,
and prints which results changed in their low-order bits. A setting that changes nothing on
some machine (an ARM CPU has no AVX kernels to switch off) is reported, not failed: the test
command warns when the combined perturbation changes nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tasks import PERTURBED  # noqa: E402

PROBE = r"""
import json, numpy as np, torch
torch.manual_seed(0)
x = torch.randn(100_000)
a = torch.randn(256, 256)
linear = torch.nn.Linear(256, 256)
a64 = torch.randn(300, 300, dtype=torch.float64)
rng = np.random.default_rng(0)
b64 = rng.standard_normal((500, 500))
b32 = b64.astype(np.float32)
with torch.no_grad():
    out = {
        "torch float32 sum": x.sum().item(),
        "torch nn.Linear float32": linear(a).double().sum(dim=1).tolist(),
        "torch float64 matmul": (a64 @ a64).sum(dim=1).tolist(),
        "numpy float32 matmul": (b32 @ b32).astype(np.float64).sum(axis=1).tolist(),
        "numpy float64 matmul": (b64 @ b64)[:, :5].ravel().tolist(),
        "numpy float64 exp and log": [float(np.exp(b64).sum()), float(np.log(np.abs(b64)).sum()),
                                      float(np.exp(b64).view(np.int64).sum() % 2**52)],
    }
print(json.dumps({k: [float(v).hex() for v in (x if isinstance(x, list) else [x])] for k, x in out.items()}))
"""

# Settings that belong together (one thread count for every runtime) are probed together.
GROUPS = {
    "one thread": ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"),
    "torch generic kernels": ("ATEN_CPU_CAPABILITY",),
    "MKL compatible mode": ("MKL_CBWR",),
    "OpenBLAS Sandy Bridge kernels": ("OPENBLAS_CORETYPE",),
    "NumPy baseline loops": ("NPY_DISABLE_CPU_FEATURES",),
}


def probe(settings: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PERTURBED}
    env.update(settings)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    missing = {k for keys in GROUPS.values() for k in keys} ^ set(PERTURBED)
    if missing:
        print(f"perturbation_probe: GROUPS and tasks.PERTURBED disagree on {sorted(missing)}", file=sys.stderr)
        return 2
    base = probe({})
    rows = [(label, {k: PERTURBED[k] for k in keys}) for label, keys in GROUPS.items()]
    rows.append(("all of them (the test command)", dict(PERTURBED)))
    print("perturbation probe: which low-order bits each setting changes on this machine")
    combined_changes = 0
    for label, settings in rows:
        result = probe(settings)
        changed = [name for name in base if result[name] != base[name]]
        print(f"  {label:<32} {', '.join(changed) if changed else 'changes nothing here'}")
        if settings == PERTURBED:
            combined_changes = len(changed)
    if combined_changes == 0:
        # Not an error: the book's numbers are still checked, only not perturbed here.
        print("perturbation_probe: warning: the perturbed environment changes no rounding on this "
              "machine, so the test command cannot catch machine-dependent digits here", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
