"""Random fields for the phantom: power-law (1/f^beta) noise and difficulty-skewed draws."""

from __future__ import annotations

import numpy as np
import scipy.fft


def power_law_noise(
    shape: tuple[int, int],
    beta: float,
    rng: np.random.Generator,
    *,
    anisotropy: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """A Gaussian random field with power spectrum ~ 1 / f^beta; returns (H, W) float32, mean 0, std 1.

    anisotropy > 1 stretches structures along the direction `angle` (radians from the x axis): the
    frequency component along that direction is scaled up, so its power falls off faster.
    """
    rows, cols = shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    along = fx * np.cos(angle) + fy * np.sin(angle)
    across = -fx * np.sin(angle) + fy * np.cos(angle)
    freq = np.hypot(along * anisotropy, across)
    freq[0, 0] = 1.0
    # Power spectrum P(f) ~ f^-beta, so amplitudes scale as f^(-beta/2) (Burgess 1999, mammographic texture).
    # The lowest frequency is floored at one cycle per image so the field has no single dominant blob.
    amplitude = np.maximum(freq, 1.0 / max(rows, cols)) ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    white = rng.standard_normal((rows, cols), dtype=np.float32)
    spectrum = scipy.fft.rfft2(white) * amplitude.astype(np.float32)
    field = scipy.fft.irfft2(spectrum, s=(rows, cols))
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def skewed_draw(rng: np.random.Generator, easy: float, hard: float, difficulty: float) -> float:
    """A value between `easy` and `hard`: uniform when difficulty = 0.5, always `easy` at 0, `hard` at 1.

    The fraction t = u^((1 - d) / d) of the way from easy to hard, u ~ U(0, 1), has median 0.5^((1-d)/d).
    """
    u = rng.random()
    if difficulty <= 0.0:
        t = 0.0
    elif difficulty >= 1.0:
        t = 1.0
    else:
        t = u ** ((1.0 - difficulty) / difficulty)
    return float(easy + (hard - easy) * t)
