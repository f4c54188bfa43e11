"""No gray band along the borders (issue 11): a photo of one colour, colorized by a network trained
on that colour with the training's white letterbox bars, keeps its chroma up to its edges.

The network learns ab = 0 in the white bars of its training inputs and blurs that into the photo
next to them; colorize shows it the photo's own edges in place of the bars (``colors.letterbox``
with ``pad_value=None``), so the outer 5% of rows and columns stay within 2 Lab units of the interior.
"""

import keras
import numpy as np
import pytest

from koalarization import colors
from koalarization.model import network as model
from koalarization.model.colorizer import Colorizer

SIZE, DIM = 32, 4
LAB = (60.0, 30.0, 20.0)  # a warm orange-brown, chroma 36


def one_colour(height, width):
    return np.broadcast_to(colors.lab_to_rgb(np.array(LAB, np.float32)).numpy(), (height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    """A colorizer trained on letterboxed one-colour photos of several aspect ratios (white bars, as the builder makes them)."""
    shapes = [(48, 64), (64, 48), (30, 90), (90, 30), (64, 64), (40, 100)] * 4
    labs = np.stack([colors.prepare_lab(one_colour(h, w), SIZE).numpy() for h, w in shapes])  # (N, S, S, 3)
    keras.utils.set_random_seed(0)
    network = model.build_colorizer(DIM)
    model.compile_colorizer(network, 0.002)
    inputs = {"l": colors.scale_l(labs[..., :1]), "embedding": np.zeros((len(shapes), DIM), np.float32)}
    network.fit(inputs, colors.scale_ab(labs[..., 1:]), batch_size=8, epochs=60, verbose=0)
    embedder = keras.Sequential([keras.Input((299, 299, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(DIM, kernel_initializer="zeros")])
    return Colorizer.from_keras(network, embedder, SIZE)  # embedding 0, as in training


@pytest.mark.parametrize("height, width", [(64, 64), (60, 120), (120, 60), (50, 200)])
def test_chroma_of_the_outer_five_percent_matches_the_interior(trained, height, width):
    out = trained.colorize([one_colour(height, width)])[0].numpy() / 255.0
    lab = colors.rgb_to_lab(out).numpy()
    chroma = np.hypot(lab[..., 1], lab[..., 2])  # (H, W)
    interior = chroma[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].mean()
    assert interior > 25, "the network did not learn the colour"
    rows, columns = max(1, round(0.05 * height)), max(1, round(0.05 * width))
    bands = {"top": chroma[:rows], "bottom": chroma[-rows:], "left": chroma[:, :columns], "right": chroma[:, -columns:]}
    for side, band in bands.items():
        assert abs(band.mean() - interior) <= 2.0, f"{height}x{width} {side}: chroma {band.mean():.1f} vs {interior:.1f} inside"
