"""The colorizer's FLOPs, counted from its conv layers (keras only: also used on the JAX backend)."""

import keras

from koalarization.model import network as model

EMBEDDING_DIM = 1000


def conv_flops_per_image(colorizer):
    """Forward FLOPs of one image, counted from the conv layers: ``2·H·W·k²·Cin·Cout`` each.

    The model must have a static height and width. Bias, ReLU, fusion and upsampling are left out
    (well under 1% of the total).
    """
    total = 0
    for layer in colorizer.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            k_h, k_w = layer.kernel_size
            total += 2 * height * width * k_h * k_w * c_in * c_out
    return total


def train_flops_per_image(image_size, embedding_dim=EMBEDDING_DIM):
    """Forward + backward ≈ 3 × forward (the backward pass needs gradients for inputs and weights)."""
    return 3 * conv_flops_per_image(model.build_colorizer(embedding_dim, image_size, image_size))
