"""Export a trained colorizer, with its Inception-ResNet-v2, as a SavedModel for TF Serving.

    python -m koalarization.export --model runs/smoke --out models/koalarization/1

``--out`` is the numbered version folder TF Serving expects. Signatures:

- ``serving_default``: ``image_bytes`` (string [B], encoded JPEG/PNG/BMP/GIF, each of any size)
  -> ``colorized_bytes`` (string [B], PNG of the same size as each input, zlib level 1: as
  lossless as any level, and much faster to write). The whole method of :mod:`koalarization.inference`
  runs in the graph: decode, luminance, letterbox, Inception embedding, colorizer, ab upsampling,
  recombination with the full-resolution L, PNG encoding.
- ``colorize_lab``: ``l`` (float [B, H, W, 1], L/50-1, H and W multiples of 8) and ``embedding``
  (float [B, D]) -> ``ab`` (float [B, H, W, 2], ab/127), for users who bring their own embeddings.
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
from koalarization import colors, inference

SIGNATURES = ("serving_default", "colorize_lab", "embed")
PNG_COMPRESSION = 1  # zlib level: lossless like any level, ~10x faster to write than the default 6, ~15% bigger


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model: str  # run dir, .keras file
    out: str  # version folder, e.g. models/koalarization/1
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    working_size: int | None = None  # colorizer input size; default: the training image size, else 224
    overwrite: bool = False
    verbose: bool = False


def build_module(colorizer, inception, working_size=colors.IMAGE_SIZE):
    """A ``tf.Module`` holding the variables of both networks and the three signature functions."""
    import tensorflow as tf

    embedding_dim = int(inception.outputs[0].shape[-1])
    module = tf.Module(name="koalarization")
    # Only the variables are tracked (as keras.export.ExportArchive does), never the Keras objects,
    # so that loading needs no Keras.
    module.colorizer_variables = list(colorizer.variables)
    module.inception_variables = list(inception.variables)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 1], tf.float32, name="l"),
            tf.TensorSpec([None, embedding_dim], tf.float32, name="embedding"),
        ]
    )
    def colorize_lab(l, embedding):
        return {"ab": colorizer({"l": l, "embedding": embedding}, training=False)}  # (B, H, W, 2)

    @tf.function(
        input_signature=[tf.TensorSpec([None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3], tf.float32, name="inception_input")]
    )
    def embed(inception_input):
        return {"embedding": inception(inception_input, training=False)}  # (B, D)

    # serving_default calls the two functions above, so each network is traced once.
    def predict_ab(l, embedding):
        return colorize_lab(l, embedding)["ab"]

    def embed_images(gray):
        return embed(gray)["embedding"]

    def colorize_encoded(image_bytes):
        image = tf.io.decode_image(image_bytes, dtype=tf.float32, expand_animations=False)  # (H, W, C) in [0, 1]
        rgb = colors.to_float_rgb(image)  # (H, W, 3)
        colorized = inference.colorize_batch([rgb], predict_ab, embed_images, working_size)[0]  # (H, W, 3) uint8
        return tf.io.encode_png(colorized, compression=PNG_COMPRESSION)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        colorized = tf.map_fn(colorize_encoded, image_bytes, fn_output_signature=tf.string)  # (B,)
        return {"colorized_bytes": colorized}

    module.serve, module.colorize_lab, module.embed = serve, colorize_lab, embed
    return module


def export_saved_model(
    colorizer,
    out_dir,
    inception_weights="imagenet",
    inception=None,
    working_size=colors.IMAGE_SIZE,
    config=None,
    overwrite=False,
):
    """Write the SavedModel of ``colorizer`` + Inception-ResNet-v2 to ``out_dir``; returns ``out_dir``.

    ``inception``: an already built embedder ((B, 299, 299, 3) -> (B, D)); when None it is built with
    ``inception_weights`` ("imagenet", "random" or a weights file). ``config``: the training config,
    written to ``export.json``. Raises ``FileExistsError`` for a non-empty ``out_dir`` unless ``overwrite``.
    """
    import tensorflow as tf

    from koalarization import embedding

    inference.check_working_size(working_size)
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists and is not empty (pass --overwrite to replace it)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    if inception is None:
        inception = embedding.build_inception(inception_weights)
    colorizer_dim = inference.embedding_dim_of(colorizer)
    embedder_dim = int(inception.outputs[0].shape[-1])
    inference.check_embedding_dim(colorizer_dim, embedder_dim, inference.find_embedding_facts(config))

    module = build_module(colorizer, inception, working_size)
    signatures = {"serving_default": module.serve, "colorize_lab": module.colorize_lab, "embed": module.embed}
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", suffix=".tmp", dir=parent)
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        weights = inception_weights if isinstance(inception_weights, dict) else embedding.describe_weights(inception_weights)
        info = {
            "koalarization_version": koalarization.__version__,
            "working_size": working_size,
            "inception": {"model": inception.name, "weights": weights, "dim": embedder_dim, "input_size": colors.INCEPTION_SIZE},
            "signatures": {
                "serving_default": "image_bytes string[B] (JPEG/PNG/BMP/GIF) -> colorized_bytes string[B] (PNG, same size)",
                "colorize_lab": "l float[B,H,W,1] (L/50-1), embedding float[B,D] -> ab float[B,H,W,2] (ab/127)",
                "embed": "inception_input float[B,299,299,3] (gray in [-1,1]) -> embedding float[B,D]",
            },
            "config": config,
        }
        with open(os.path.join(staging, inference.EXPORT_INFO_NAME), "w") as f:
            json.dump(info, f, indent=2, default=str)
        os.chmod(staging, 0o755)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def export_from_path(config, inception=None, log=print):
    """Resolve ``config.model`` (run dir or .keras), pick the Inception weights, and export."""
    if config.working_size is not None:
        inference.check_working_size(config.working_size)
    kind, model_path, run_config = inference.resolve_model(config.model)
    if kind != "keras":
        raise inference.ModelError(f"{config.model}: already a SavedModel; export takes a run dir or a .keras file")
    colorizer = inference.load_colorizer(model_path)
    weights = config.inception_weights or inference.weights_from_facts(inference.find_embedding_facts(run_config)) or "imagenet"
    working_size = config.working_size or inference.training_image_size(run_config) or colors.IMAGE_SIZE
    log(f"exporting {model_path} with Inception weights '{weights}', working size {working_size} -> {config.out}")
    out = export_saved_model(
        colorizer, config.out, weights, inception=inception, working_size=working_size, config=run_config, overwrite=config.overwrite
    )
    log(f"wrote {out} (signatures: {', '.join(SIGNATURES)})")
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.export",
        description="Export a trained colorizer and its Inception-ResNet-v2 as a SavedModel for TF Serving.",
    )
    parser.add_argument("--model", required=True, help="run dir (holding model.keras and config.json) or a .keras file")
    parser.add_argument("--out", required=True, help="version folder to write, e.g. models/koalarization/1 (TF Serving layout)")
    parser.add_argument(
        "--inception-weights",
        help="imagenet, random or a weights file for Inception-ResNet-v2 (default: the weights recorded "
        "in the run's config, else imagenet)",
    )
    parser.add_argument(
        "--working-size", type=int, help="size (multiple of 8) the colorizer runs at (default: the training image size, else 224)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it already holds something")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return ExportConfig(**{k: v for k, v in vars(parser.parse_args(argv)).items()})


def main(argv=None):
    from koalarization import embedding

    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        export_from_path(config)
    except (inference.ModelError, embedding.WeightsUnavailableError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
