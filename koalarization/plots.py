"""The evaluation figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each function returns the ``Figure`` and saves it when given a path, so the same code serves the
CLI (PNG files) and the notebooks.
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
    ``gray``, ``model``, ``original`` (H, W, 3) in [0, 1].
    """
    rows = [("best", item) for item in best] + [("worst", item) for item in worst]
    figure = _new_figure(7.5, 2.5 * max(len(rows), 1))
    for row, (rank, item) in enumerate(rows):
        for col, name in enumerate(("gray", "model", "original")):
            axes = figure.add_subplot(len(rows), 3, 3 * row + col + 1)
            axes.imshow(np.clip(item[name], 0.0, 1.0))
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(name)
            if col == 0:
                name = os.path.basename(str(item["key"])) or str(item["key"])
                axes.set_ylabel(f"{rank}: {name[-24:]}\nab MSE {item['ab_mse']:.4f}", fontsize=8)
    figure.tight_layout()
    if path:
        figure.savefig(path)
    return figure


# -- training figures (koalarization.train) ------------------------------------------------------
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
    float RGB (n*S, 3*S, 3) in [0, 1], a TF tensor (training writes it to TensorBoard)."""
    import tensorflow as tf

    from koalarization import colors

    lum = colors.unscale_l(l)  # (n, S, S, 1) in [0, 100]

    def rgb(ab_scaled):
        return colors.lab_to_rgb(tf.concat([lum, colors.unscale_ab(ab_scaled)], axis=-1))  # (n, S, S, 3)

    gray = rgb(tf.zeros_like(ab_true))
    row = tf.concat([gray, rgb(tf.cast(ab_pred, tf.float32)), rgb(ab_true)], axis=2)  # (n, S, 3S, 3)
    return tf.clip_by_value(tf.reshape(row, (-1, row.shape[2], 3)), 0.0, 1.0)  # (n*S, 3S, 3)
