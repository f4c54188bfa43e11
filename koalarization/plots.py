"""The evaluation figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function returns the ``Figure`` and saves it when given a path, so the same code serves the
CLI (PNG files) and the notebooks.
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from koalarization import safeio

METHOD_LABELS = {"model": "model", "gray": "gray (ab = 0)", "mean_ab": "mean ab"}


def _new_figure(width, height):
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def ab_error_cdf(thresholds, curves, aucs, path=None):
    """Cumulative ab-error curves: ``curves[method]`` is the fraction of pixels within each threshold."""
    figure = _new_figure(6, 4.5)
    axes = figure.add_subplot()
    for method, curve in curves.items():
        axes.plot(thresholds, curve, label=f"{METHOD_LABELS.get(method, method)} (AuC {aucs[method]:.3f})")
    axes.set(
        xlabel="threshold t (Euclidean ab error, Lab units)",
        ylabel="fraction of pixels with error ≤ t",
        xlim=(thresholds[0], thresholds[-1]),
        ylim=(0, 1.01),
        title="Cumulative ab error (Zhang et al. 2016)",
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    if path:
        figure.savefig(path)
    return figure


def best_worst_grid(best, worst, path=None):
    """Rows ``gray | model | original`` for the best then the worst images by model ab MSE.

    ``best`` and ``worst`` are lists of dicts with ``key``, ``ab_mse`` and the RGB images
    ``model`` and ``original`` (H, W, 3) in [0, 1] (the gray tile is the original's luminance).
    """
    rows = []
    for rank, items in (("best", best), ("worst", worst)):
        for item in items:
            name = safeio.shown(os.path.basename(str(item["key"])) or str(item["key"]))
            rows.append((f"{rank}: {name[-24:]}\nab MSE {item['ab_mse']:.4f}", item["original"], item["model"]))
    return comparison_grid(rows, path, titles=("gray", "model", "original"))


# -- gray | colorized | original: the one comparison of every command ---------------------------
PANEL_MAX_HEIGHT = 512
PANEL_MIN_HEIGHT = 64
PANEL_GAP = 4


def comparison_tiles(original, colorized):
    """``[gray, colorized, original]`` float RGB (..., H, W, 3) in [0, 1]; the original only when it has colour.

    The gray tile is the original's luminance with no chroma: what the network was given.
    """
    from koalarization import colors

    original = np.clip(np.asarray(original, np.float32), 0.0, 1.0)
    gray = np.clip(colors.luminance_to_rgb(colors.rgb_to_luminance(original)).numpy(), 0.0, 1.0)
    colorized = np.asarray(colorized)
    colorized = colorized / 255.0 if colorized.dtype == np.uint8 else colorized
    has_colour = float(np.ptp(original, axis=-1).max()) > 1.0 / 255.0
    return [gray, colorized, original] if has_colour else [gray, colorized]


def comparison_strip(original, colorized, gap=PANEL_GAP):
    """uint8 panel gray | colorized | original (the original only when it has colour), one height
    between ``PANEL_MIN_HEIGHT`` and ``PANEL_MAX_HEIGHT`` pixels, so a 1x1 is visible and a panorama small.

    ``original``: float (H, W, 3) in [0, 1]; ``colorized``: uint8 (H, W, 3).
    """
    from PIL import Image

    height = int(np.clip(original.shape[0], PANEL_MIN_HEIGHT, PANEL_MAX_HEIGHT))
    width = max(1, round(original.shape[1] * height / original.shape[0]))
    resample = Image.NEAREST if height > original.shape[0] else Image.LANCZOS

    def fit(tile):
        return np.asarray(Image.fromarray(tile).resize((width, height), resample))

    original = fit(np.round(np.clip(original, 0, 1) * 255).astype(np.uint8))  # shrink first: the rest is cheap
    tiles = [np.round(tile * 255).astype(np.uint8) for tile in comparison_tiles(original / 255.0, fit(colorized))]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, spacer)][:-1], axis=1)


def comparison_grid(rows, path=None, titles=("gray input", "colorized", "original")):
    """A figure with one row per ``(label, original, colorized)``: gray | colorized | original."""
    figure = _new_figure(7.5, 2.5 * max(len(rows), 1))
    for row, (label, original, colorized) in enumerate(rows):
        for col, tile in enumerate(comparison_tiles(original, colorized)):
            axes = figure.add_subplot(len(rows), 3, 3 * row + col + 1)
            axes.imshow(np.clip(tile, 0.0, 1.0))
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(titles[col])
            if col == 0:
                axes.set_ylabel(label, fontsize=8)
    figure.tight_layout()
    if path:
        from koalarization import safeio

        with safeio.atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
    return figure


# -- training figures (koalarization.train.trainer) ------------------------------------------------------
def loss_curves(history, path=None):
    """Loss curves of a training run (train and, when there is one, val) per epoch.

    ``history`` is ``{"epoch": [0, 1, ...], "loss": [...], "val_loss": [...]}`` (``val_loss``
    optional). The PNG is written under a temporary name and renamed, so a kill never leaves half
    a picture.
    """
    from matplotlib.ticker import MaxNLocator

    from koalarization import safeio

    figure = _new_figure(6, 4)
    axes = figure.add_subplot()
    epochs = [e + 1 for e in history.get("epoch", [])]
    for key in ("loss", "val_loss"):
        if len(history.get(key, [])) == len(epochs) and epochs:
            axes.plot(epochs, history[key], marker="o", label=key)
    axes.set(xlabel="epoch", ylabel="MSE on scaled ab", title="Koalarization training")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    if path:
        with safeio.atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return figure


def sample_panel(l, ab_pred, ab_true):
    """Rows of gray | prediction | truth: scaled ``l`` (n, S, S, 1) and ab (n, S, S, 2) ->
    float RGB (n*S, 3*S, 3) in [0, 1], a TF tensor (training writes it to TensorBoard).
    The tiles are :func:`comparison_tiles` of each example (truth as the original)."""
    import tensorflow as tf

    from koalarization import colors

    lum = colors.unscale_l(tf.cast(l, tf.float32))  # (n, S, S, 1) in [0, 100]

    def rgb(ab_scaled):
        return colors.lab_to_rgb(tf.concat([lum, colors.unscale_ab(tf.cast(ab_scaled, tf.float32))], axis=-1)).numpy()

    truth, prediction = rgb(ab_true), rgb(ab_pred)  # (n, S, S, 3)
    rows = []
    for original, colorized in zip(truth, prediction):
        tiles = comparison_tiles(original, colorized)
        rows.append(np.concatenate(tiles + [original] * (3 - len(tiles)), axis=1))  # (S, 3S, 3)
    return tf.constant(np.clip(np.concatenate(rows, axis=0), 0.0, 1.0), tf.float32)  # (n*S, 3S, 3)


def quality_by_hints(counts, psnr, ab_error, path=None):
    """PSNR and mean ab error against the number of colour hints (a hints model; Zhang et al. 2017, Fig. 4)."""
    figure = _new_figure(8, 3.5)
    shown = [max(count, 0.5) for count in counts]  # 0 hints drawn at 0.5 on the log axis
    for index, (values, label) in enumerate(((psnr, "PSNR (dB)"), (ab_error, "mean ab error (Lab units)")), start=1):
        axes = figure.add_subplot(1, 2, index)
        axes.plot(shown, values, marker="o")
        axes.set_xscale("log")
        axes.set_xticks(shown, [str(count) for count in counts])
        axes.set(xlabel="simulated hints per photo", ylabel=label)
        axes.grid(alpha=0.3)
    figure.suptitle("Quality against the number of colour hints")
    figure.tight_layout()
    if path:
        figure.savefig(path)
    return figure
