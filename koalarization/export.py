"""Export a trained colorizer, with its Inception-ResNet-v2, as a SavedModel for TF Serving.

    python -m koalarization.export --model runs/smoke --out models/koalarization/1

``--out`` is the numbered version folder TF Serving expects. Signatures:

- ``serving_default``: ``image_bytes`` (string [B], encoded JPEG/PNG/GIF/BMP/WebP, each of any size
  up to ``--max-pixels``) -> ``colorized_bytes`` (string [B], PNG of the same size as each input,
  zlib level 1: as lossless as any level, and much faster to write). The graph is traced from
  :meth:`koalarization.colorizer.Colorizer.colorize_encoded`, the method ``colorize`` runs: decode
  (EXIF orientation applied, size checked from the header first), luminance, letterbox, Inception
  embedding, colorizer, ab upsampling, recombination with the full-resolution L in strips, PNG.
  One bad element fails the whole call with an ``InvalidArgumentError`` (TF Serving: HTTP 400 and
  ``{"error": ...}`` for the whole request); the checks made before decoding name the element
  (``image_bytes[i]: ...``), a decoder error on corrupt data does not.
- ``colorize_lab``: ``l`` (float [B, H, W, 1], L/50-1, H and W multiples of 8, else an
  ``InvalidArgumentError``) and ``embedding`` (float [B, D]) -> ``ab`` (float [B, H, W, 2], ab/127),
  for users who bring their own embeddings.
- ``embed``: ``inception_input`` (float [B, 299, 299, 3], gray in [-1, 1]) -> ``embedding`` [B, D].

The SavedModel needs only ``tensorflow`` to load (no keras, no koalarization). ``export.json``
beside ``saved_model.pb`` records the working size, the Inception weights it carries and the
training config. The folder is written under a temporary name and renamed at the end, so a TF
Serving instance watching the parent never sees half a model.
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile

import koalarization
from koalarization import images, options

SIGNATURES = ("serving_default", "colorize_lab", "embed")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model: str  # run dir, .keras file
    out: str  # version folder, e.g. models/koalarization/1
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    working_size: int | None = None  # colorizer input size; default: the training image size, else 224
    max_pixels: int = images.DEFAULT_MAX_PIXELS  # serving_default refuses bigger images (0: no limit)
    overwrite: bool = False
    verbose: bool = False


def build_module(colorizer, max_pixels=images.DEFAULT_MAX_PIXELS):
    """A ``tf.Module`` holding the variables of both networks and the three signature functions.

    ``colorizer``: a :class:`~koalarization.colorizer.Colorizer` loaded from Keras. ``serving_default``
    is :meth:`Colorizer.colorize_encoded` traced with the module's two network functions.
    """
    import tensorflow as tf

    from koalarization import colors, inference

    network, inception = colorizer.networks
    module = tf.Module(name="koalarization")
    # Only the variables are tracked (as keras.export.ExportArchive does), never the Keras objects,
    # so that loading needs no Keras.
    module.colorizer_variables = list(network.variables)
    module.inception_variables = list(inception.variables)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 1], tf.float32, name="l"),
            tf.TensorSpec([None, colorizer.embedding_dim], tf.float32, name="embedding"),
        ]
    )
    def colorize_lab(l, embedding):
        with tf.control_dependencies([inference.check_lab_shape(l)]):
            return {"ab": network({"l": l, "embedding": embedding}, training=False)}  # (B, H, W, 2)

    @tf.function(
        input_signature=[tf.TensorSpec([None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3], tf.float32, name="inception_input")]
    )
    def embed(inception_input):
        return {"embedding": inception(inception_input, training=False)}  # (B, D)

    # serving_default runs the same method through the two functions above: each network traced once.
    served = type(colorizer)(
        lambda l, e: colorize_lab(l, e)["ab"], lambda gray: embed(gray)["embedding"], colorizer.working_size, colorizer.embedding_dim
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        indices = tf.range(tf.shape(image_bytes)[0])

        def one(args):
            index, data = args
            return served.colorize_encoded(data, max_pixels, name=tf.strings.format("image_bytes[{}]", [index]))

        return {"colorized_bytes": tf.map_fn(one, (indices, image_bytes), fn_output_signature=tf.string, parallel_iterations=1)}

    module.serve, module.colorize_lab, module.embed = serve, colorize_lab, embed
    return module


def export_saved_model(
    colorizer,
    out_dir,
    inception_weights="imagenet",
    inception=None,
    working_size=None,
    config=None,
    overwrite=False,
    max_pixels=images.DEFAULT_MAX_PIXELS,
):
    """Write the SavedModel of ``colorizer`` (a :class:`~koalarization.colorizer.Colorizer` from Keras,
    or a Keras network with ``inception``) to ``out_dir``; returns ``out_dir``.

    ``inception``: with a Keras network, an already built embedder ((B, 299, 299, 3) -> (B, D)); when
    None it is built with ``inception_weights`` ("imagenet", "random" or a weights file). ``config``:
    the training config, written to ``export.json``. Raises ``FileExistsError`` for a non-empty
    ``out_dir`` unless ``overwrite``.
    """
    import tensorflow as tf

    from koalarization import colors, embedding
    from koalarization.colorizer import EXPORT_INFO_NAME, Colorizer

    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists and is not empty (pass --overwrite to replace it)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if not isinstance(colorizer, Colorizer):
        if inception is None:
            inception = embedding.build_inception(inception_weights)
        colorizer = Colorizer.from_keras(colorizer, inception, working_size or colors.IMAGE_SIZE, config=config)
    if colorizer.networks is None:
        raise ValueError(f"{colorizer.source}: already a SavedModel; export takes a run dir or a .keras file")
    inception = colorizer.networks[1]
    config = config if config is not None else colorizer.config

    module = build_module(colorizer, max_pixels)
    signatures = {"serving_default": module.serve, "colorize_lab": module.colorize_lab, "embed": module.embed}
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", suffix=".tmp", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        weights = inception_weights if isinstance(inception_weights, dict) else embedding.describe_weights(inception_weights)
        info = {
            "koalarization_version": koalarization.__version__,
            "working_size": colorizer.working_size,
            "max_pixels": max_pixels,
            "inception": {"model": inception.name, "weights": weights, "dim": colorizer.embedding_dim, "input_size": colors.INCEPTION_SIZE},
            "signatures": {
                "serving_default": "image_bytes string[B] (JPEG/PNG/GIF/BMP/WebP) -> colorized_bytes string[B] (PNG, same size)",
                "colorize_lab": "l float[B,H,W,1] (L/50-1, H and W multiples of 8), embedding float[B,D] -> ab float[B,H,W,2] (ab/127)",
                "embed": "inception_input float[B,299,299,3] (luma in [-1,1]) -> embedding float[B,D]",
            },
            "config": config,
        }
        with open(os.path.join(staging, EXPORT_INFO_NAME), "w") as f:
            json.dump(info, f, indent=2, default=str)
        os.chmod(staging, 0o755)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_from_path(config, inception=None, log=print):
    """Load ``config.model`` (run dir or .keras) as a Colorizer, with the Inception weights of its run, and export."""
    from koalarization.colorizer import Colorizer, ModelError, resolve_model, embedding_facts, weights_from_facts

    kind, model_path, run_config = resolve_model(config.model)
    if kind != "keras":
        raise ModelError(f"{config.model}: already a SavedModel; export takes a run dir or a .keras file")
    weights = config.inception_weights or weights_from_facts(embedding_facts(run_config)) or "imagenet"
    colorizer = Colorizer.load(config.model, inception, weights, config.working_size, log=log)
    log(f"exporting {model_path} with Inception weights '{weights}', working size {colorizer.working_size} -> {config.out}")
    out = export_saved_model(colorizer, config.out, weights, config=run_config, overwrite=config.overwrite, max_pixels=config.max_pixels)
    log(f"wrote {out} (signatures: {', '.join(SIGNATURES)})")
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.export",
        description="Export a trained colorizer and its Inception-ResNet-v2 as a SavedModel for TF Serving.",
    )
    parser.add_argument("--model", required=True, help="run dir (holding model.keras and config.json) or a .keras file")
    parser.add_argument("--out", required=True, help="version folder to write, e.g. models/koalarization/1 (TF Serving layout)")
    parser.add_argument("--inception-weights", help=options.INCEPTION_WEIGHTS_HELP)
    options.add_working_size(parser, "the colorizer runs at in the SavedModel")
    options.add_max_pixels(parser, "serving_default refuses (one InvalidArgumentError)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it already holds something")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return ExportConfig(**vars(options.check(parser, parser.parse_args(argv))))


def main(argv=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    from koalarization import embedding  # TensorFlow: after the arguments are parsed

    try:
        export_from_path(config)
    except (ValueError, embedding.WeightsUnavailableError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
