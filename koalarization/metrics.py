"""Colorization metrics, plain numpy: one image pair in, one number out.

Every function takes float arrays; RGB images are sRGB in [0, 1] with shape (H, W, 3), ab maps
are in Lab units (not scaled) with shape (H, W, 2).

- :func:`ab_mse`: the training loss, MSE between ``ab / 127`` maps.
- :func:`psnr`, :func:`ssim`: RGB result against the original, ``data_range = 1``. ``ssim`` is
  scikit-image's ``structural_similarity(channel_axis=-1, data_range=1)`` (7x7 uniform window,
  sample covariance, K1 = 0.01, K2 = 0.03) on float64 copies. Measured against the summed-area
  version it replaced (Intel Xeon, 2 shared cores): 0.33 s vs 0.21 s on a 1024x768 photo, 15 s vs
  23 s and 2.7 GB vs 1.5 GB of peak memory on a 6000x4000 one; no reason to keep a second copy.
- :func:`colorfulness`: Hasler and Süsstrunk (2003) on 0-255 values.
- :func:`ab_error_curve`, :func:`auc`: Zhang et al. (2016): the fraction of pixels whose
  Euclidean ab error is within ``t`` for ``t = 0, 1, ..., 150``; the AuC is the mean of that
  curve, so 1 means every pixel within 0 ab units and 0 means none within 150.
"""

import numpy as np
from skimage.metrics import structural_similarity

from koalarization.colors import AB_SCALE

PSNR_CAP_DB = 100.0  # identical images give this instead of inf, so means and JSON stay finite
AUC_THRESHOLDS = np.arange(0, 151, dtype=np.float64)  # ab units, Zhang et al. (2016)
SSIM_WINDOW = 7


def ab_mse(ab_pred, ab_true):
    """Mean squared error of the scaled ab maps (``ab / 127``), i.e. the training loss."""
    diff = (np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)) / AB_SCALE
    return float(np.mean(diff**2))


def psnr(rgb_pred, rgb_true, data_range=1.0):
    """Peak signal-to-noise ratio in dB, capped at :data:`PSNR_CAP_DB` for identical images."""
    mse = np.mean((np.asarray(rgb_pred, np.float64) - np.asarray(rgb_true, np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP_DB
    return float(min(10.0 * np.log10(data_range**2 / mse), PSNR_CAP_DB))


def ssim(rgb_pred, rgb_true, data_range=1.0, window=SSIM_WINDOW):
    """Mean structural similarity over the channels (Wang et al. 2004, uniform ``window``)."""
    x, y = np.asarray(rgb_pred, np.float64), np.asarray(rgb_true, np.float64)  # float32 would stay float32 in skimage
    if min(x.shape[:2]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got {x.shape[:2]}")
    return float(structural_similarity(x, y, win_size=window, data_range=data_range, channel_axis=-1))


def colorfulness(rgb):
    """Hasler and Süsstrunk (2003): ``sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)`` on 0-255 RGB."""
    rgb = np.asarray(rgb, np.float64) * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def ab_error_curve(ab_pred, ab_true, thresholds=AUC_THRESHOLDS):
    """Fraction of pixels whose Euclidean ab error (Lab units) is ``<= t``, for each threshold."""
    error = np.linalg.norm(np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64), axis=-1).ravel()
    error.sort()
    return np.searchsorted(error, thresholds, side="right") / error.size


def auc(curve):
    """Area under an :func:`ab_error_curve`, normalised to [0, 1] (the mean over the thresholds)."""
    return float(np.mean(curve))
