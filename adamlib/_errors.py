"""One wording for a rejected argument across adamlib's modules (the optimizers have their own,
torch.optim-style, in ``adamlib.optim._validate``)."""
from __future__ import annotations


def fail(name: str, value, expected: str):
    """Raise ``ValueError("name=value is not accepted: expected ...")``."""
    raise ValueError(f"{name}={value!r} is not accepted: expected {expected}")
