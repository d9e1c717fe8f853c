"""Samplers of :class:`~producers.loadgen.profile.Dist` on one seeded ``random.Random`` (deterministic)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from producers.loadgen.profile import Dist


def sampler(dist: Dist, rng: random.Random) -> Callable[[], float]:
    """A no-argument function drawing one duration (seconds, >= 0, capped at ``dist.max`` when set)."""
    if dist.kind == "exp":
        lam = 1.0 / dist.mean if dist.mean > 0 else 0.0
        draw = (lambda: rng.expovariate(lam)) if lam else (lambda: 0.0)
    elif dist.kind == "lognormal":
        # mean m = exp(mu + sigma^2 / 2)  =>  mu = ln(m) - sigma^2 / 2
        sigma = dist.shape
        mu = math.log(dist.mean) - sigma * sigma / 2 if dist.mean > 0 else 0.0
        draw = (lambda: rng.lognormvariate(mu, sigma)) if dist.mean > 0 else (lambda: 0.0)
    elif dist.kind == "uniform":
        lo, hi = dist.mean, dist.shape
        draw = lambda: rng.uniform(lo, hi)
    else:
        value = dist.mean
        draw = lambda: value
    cap = dist.max
    if cap > 0:
        return lambda: min(draw(), cap)
    return draw
