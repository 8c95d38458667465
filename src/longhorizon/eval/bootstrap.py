"""Confidence intervals for horizon curves and H_s, by the percentile bootstrap.

    ci = bootstrap_horizon(horizons, successes, s=0.5)   # successes[k]: one bool per episode at horizons[k]

Each resample draws, independently for every horizon, as many episodes as it
has, with replacement (episodes of one horizon are exchangeable; horizons are
run on separate episodes). From the resampled success rates we take

- per horizon, the 2.5 and 97.5 percentiles of the success rate (the band the
  horizon plot draws);
- H_s of the resampled curve (`horizon.horizon_length`, the same
  log-success interpolation as the point estimate) and its percentiles.

Choices (no paper fixes them): `RESAMPLES = 1000` resamples, level 0.95, a
NumPy generator seeded with the eval's `seed`, so the interval is
reproducible. A resampled curve whose H_s is censored contributes its bound
(the largest or smallest horizon); the fraction of such resamples is reported
as `censored_fraction`, and an interval that leans on them is only a bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from longhorizon.eval.horizon import horizon_length

RESAMPLES = 1000
LEVEL = 0.95


def resampled_success(successes: list[list[bool]], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n_horizons) success rates, each horizon's episodes drawn with replacement."""
    cols = []
    for outcomes in successes:
        x = np.asarray(outcomes, dtype=float)  # (N,)
        idx = rng.integers(0, len(x), size=(resamples, len(x)))  # (R, N)
        cols.append(x[idx].mean(axis=1))  # (R,)
    return np.stack(cols, axis=1)


def bootstrap_horizon(horizons: list[int], successes: list[list[bool]], s: float = 0.5, *,
                      resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Percentile intervals for each horizon's success rate and for H_s (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rates = resampled_success(successes, resamples, rng)  # (R, H)
    tail = (1 - level) / 2 * 100
    h_s = [horizon_length(horizons, list(row), s) for row in rates]
    values = np.array([h["value"] for h in h_s])
    low, high = np.percentile(values, [tail, 100 - tail])
    band = np.percentile(rates, [tail, 100 - tail], axis=0)  # (2, H)
    return {"low": float(low), "high": float(high), "level": level, "resamples": resamples, "seed": seed,
            "censored_fraction": float(np.mean([h["censored"] is not None for h in h_s])),
            "success_band": [[float(a), float(b)] for a, b in band.T]}
