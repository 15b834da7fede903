"""Full-reference image quality: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003). numpy only.

Inputs are HxW or HxWxC arrays on a 0..``data_range`` scale (uint8 RGB by
default). SSIM uses the paper's 11x11 Gaussian window (sigma 1.5), K1=0.01,
K2=0.03, 'valid' filtering, computed per channel and averaged. Images smaller
than the window use the largest odd window that fits (sigma scaled alike).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ConfigError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ConfigError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a, b


def mse(a, b) -> float:
    a, b = _pair(a, b)
    return float(np.mean((a - b) ** 2))


def psnr(a, b, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical images."""
    return psnr_of_mse(mse(a, b), data_range)


def psnr_of_mse(m: float, data_range: float = 255.0) -> float:
    """PSNR in dB of a mean squared error; ``inf`` for 0."""
    return math.inf if m == 0 else 10.0 * math.log10(data_range**2 / m)


def _gaussian(win: int, sigma: float) -> np.ndarray:
    x = np.arange(win, dtype=np.float64) - (win - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of an HxWxC array with the 1-D kernel *g*."""
    x = sliding_window_view(x, len(g), axis=0) @ g           # (H-w+1, W, C)
    return sliding_window_view(x, len(g), axis=1) @ g        # (H-w+1, W-w+1, C)


def _window(h: int, w: int, win: int = 11, sigma: float = 1.5) -> np.ndarray:
    side = min(win, h, w)
    side -= 1 - side % 2  # odd
    return _gaussian(side, sigma * side / win)


def _ssim_cs(a: np.ndarray, b: np.ndarray, data_range: float) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) over the valid window positions, averaged over channels."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    g = _window(a.shape[0], a.shape[1])
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    var_a = np.maximum(_filter(a * a, g) - mu_a**2, 0.0)
    var_b = np.maximum(_filter(b * b, g) - mu_b**2, 0.0)
    cov = _filter(a * b, g) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def ssim(a, b, data_range: float = 255.0) -> float:
    """Structural similarity (mean SSIM), 1.0 for identical images."""
    a, b = _pair(a, b)
    return _ssim_cs(a, b, data_range)[0]


def _pool2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4


def ms_ssim_scales(h: int, w: int) -> int:
    """Number of scales used: up to 5, while the smallest scale is still >= 11 pixels."""
    m = 1
    while m < len(MS_SSIM_WEIGHTS) and min(h, w) >> m >= 11:
        m += 1
    return m


def ms_ssim(a, b, data_range: float = 255.0) -> float:
    """Multi-scale SSIM with the paper's weights, renormalised over the scales that fit the image."""
    a, b = _pair(a, b)
    m = ms_ssim_scales(a.shape[0], a.shape[1])
    weights = np.array(MS_SSIM_WEIGHTS[:m]) / sum(MS_SSIM_WEIGHTS[:m])
    out = 1.0
    for j in range(m):
        s, cs = _ssim_cs(a, b, data_range)
        if j == m - 1:
            out *= max(s, 0.0) ** weights[j]
        else:
            out *= max(cs, 0.0) ** weights[j]
            a, b = _pool2(a), _pool2(b)
    return float(out)
