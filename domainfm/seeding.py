"""Seeds derived from several integers, one rule for every stage.

Training loops seed dropout per (seed, step, rank), masking per (seed, micro-batch, rank) and the
privacy audit its candidate draws per (seed, canary): the same numbers on every run, machine and
Python version, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations


def mix_seed(*keys: int) -> int:
    """One seed from several integers (stable across runs, machines and Python versions)."""
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key) + 7919) % (2**63 - 1)
    return seed


def seeded_generator(*keys: int):
    """A CPU ``torch.Generator`` seeded from several integers."""
    import torch

    gen = torch.Generator()
    gen.manual_seed(mix_seed(*keys))
    return gen
