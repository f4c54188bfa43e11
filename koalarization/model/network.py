"""The Deep Koalarization network: encoder, fusion with the Inception embedding, decoder.

    model = build_colorizer(embedding_dim=1000)
    ab = model({"l": l, "embedding": embedding})  # l (B,H,W,1) in [-1,1] -> ab (B,H,W,2) in [-1,1]

Layer for layer the table of Baldassarre et al. (2017): no batch norm, no dropout, every
convolution 'same' padded, 6,573,794 parameters with a 1000-d embedding. Only ``keras`` and
``keras.ops`` are used, so the model also runs on Keras' JAX backend. Any H and W divisible by 8
work: the fusion layer repeats the embedding over whatever grid the encoder produced.

``build_colorizer(hints=True)`` is an addition, not the paper's: the colour-hints variant
(Zhang et al. 2017's user points), whose encoder also takes a ``hints`` input (B,H,W,3): two
channels of hint ab (scaled like the output) and a mask (1 where a hint is, 0 elsewhere). Only
the first convolution grows (3x3x3x64 more weights: 6,575,522 parameters); everything else is the
paper's. See :mod:`koalarization.model.hints` and docs/hints.md.
"""

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import keras
from keras import layers, ops

# (filters, stride) of the encoder's 3x3 convolutions, all ReLU.
ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))
FUSION_FILTERS = 256
HINT_CHANNELS = 3  # the variant's extra encoder input: hint a, hint b (scaled), mask


@keras.saving.register_keras_serializable(package="koalarization")
class FusionLayer(layers.Layer):
    """Repeat the embedding at every position of the encoder's grid, then concatenate it.

    ``[features (B, h, w, C), embedding (B, D)] -> (B, h, w, C + D)``, for any h and w: the
    embedding is repeated ``h*w`` times as ``RepeatVector`` does, reshaped to the grid and joined
    on the channel axis.
    """

    def call(self, inputs):
        features, embedding = inputs
        shape = ops.shape(features)
        height, width = shape[1], shape[2]
        repeated = ops.repeat(ops.expand_dims(embedding, 1), height * width, axis=1)  # (B, h*w, D)
        grid = ops.reshape(repeated, (-1, height, width, ops.shape(embedding)[-1]))  # (B, h, w, D)
        return ops.concatenate([features, ops.cast(grid, features.dtype)], axis=-1)  # (B, h, w, C+D)

    def compute_output_shape(self, input_shapes):
        features, embedding = input_shapes
        depth = None if features[-1] is None or embedding[-1] is None else features[-1] + embedding[-1]
        return (*features[:-1], depth)


def _conv(filters, name, stride=1, activation="relu", kernel_size=3):
    return layers.Conv2D(filters, kernel_size, strides=stride, padding="same", activation=activation, name=name)


def build_colorizer(embedding_dim=1000, height=None, width=None, name="koalarization", hints=False):
    """The functional colorizer: inputs ``l`` (B,H,W,1) and ``embedding`` (B,D), output ab (B,H,W,2).

    ``height`` and ``width`` default to ``None`` (any size divisible by 8). ``hints=True``: the
    colour-hints variant, with a third input ``hints`` (B,H,W,3) joined to ``l`` before the encoder.
    """
    l = keras.Input((height, width, 1), name="l")
    embedding = keras.Input((embedding_dim,), name="embedding")
    inputs = {"l": l, "embedding": embedding}

    x = l
    if hints:
        inputs["hints"] = keras.Input((height, width, HINT_CHANNELS), name="hints")
        x = layers.Concatenate(name="with_hints")([l, inputs["hints"]])  # (B, H, W, 4)
    for i, (filters, stride) in enumerate(ENCODER, start=1):
        x = _conv(filters, f"encoder_conv{i}", stride)(x)  # ends at (B, H/8, W/8, 256)

    x = FusionLayer(name="fusion")([x, embedding])  # (B, H/8, W/8, 256 + D)
    x = _conv(FUSION_FILTERS, "fusion_conv", kernel_size=1)(x)  # (B, H/8, W/8, 256)

    x = _conv(128, "decoder_conv1")(x)  # (B, H/8, W/8, 128)
    x = layers.UpSampling2D(2, name="decoder_up1")(x)  # (B, H/4, W/4, 128)
    x = _conv(64, "decoder_conv2")(x)
    x = _conv(64, "decoder_conv3")(x)  # (B, H/4, W/4, 64)
    x = layers.UpSampling2D(2, name="decoder_up2")(x)  # (B, H/2, W/2, 64)
    x = _conv(32, "decoder_conv4")(x)  # (B, H/2, W/2, 32)
    x = _conv(2, "decoder_conv5", activation="tanh")(x)  # (B, H/2, W/2, 2)
    ab = layers.UpSampling2D(2, name="ab", dtype="float32")(x)  # (B, H, W, 2), float32 even in mixed precision
    return keras.Model(inputs, ab, name=name)


def takes_hints(network):
    """Whether a Keras colorizer network is the colour-hints variant (has a ``hints`` input)."""
    inputs = network.input if isinstance(network.input, dict) else dict(zip(network.input_names, network.inputs))
    return "hints" in inputs


def compile_colorizer(model, learning_rate=0.001, clipnorm=None):
    """The paper's training setup: MSE on scaled ab, Adam at ``learning_rate`` (``clipnorm``: each
    gradient clipped to that norm first, not the paper's: ``train --clipnorm``)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, **({"clipnorm": clipnorm} if clipnorm else {})), loss="mse")
    return model
