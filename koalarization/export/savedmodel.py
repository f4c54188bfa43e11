"""Writing the SavedModel of a :class:`koalarization.model.colorizer.Colorizer`: the work of
``python -m koalarization.export`` (see that module for the signatures), as a library for the CLI,
``train`` and the demo. Light to import: TensorFlow is imported by the functions.
"""


import dataclasses
import json
import os
import re
import shutil

import koalarization
from koalarization import cli, errors, images, locks, safeio
from koalarization.export.config import ExportConfig  # noqa: F401  (the config export_from_path takes)

SIGNATURES = ("serving_default", "colorize_lab", "embed")  # a colour-hints model adds "with_hints"


def build_module(colorizer, max_pixels=images.DEFAULT_MAX_PIXELS):
    """A ``tf.Module`` holding the variables of both networks and the three signature functions.

    ``colorizer``: a :class:`~koalarization.model.colorizer.Colorizer` loaded from Keras. ``serving_default``
    is :meth:`Colorizer.colorize_encoded` traced with the module's two network functions. The
    networks compute in the colorizer's precision; every signature takes and gives float32.
    """
    import tensorflow as tf

    from koalarization import colors
    from koalarization.model import method as inference

    network, inception = colorizer.networks
    module = tf.Module(name="koalarization")
    # Only the variables are tracked (as keras.export.ExportArchive does), never the Keras objects,
    # so that loading needs no Keras.
    module.colorizer_variables = list(network.variables)
    module.inception_variables = list(inception.variables)

    lab_specs = [
        tf.TensorSpec([None, None, None, 1], tf.float32, name="l"),
        tf.TensorSpec([None, colorizer.embedding_dim], tf.float32, name="embedding"),
    ]

    def lab(inputs):
        with tf.control_dependencies([inference.check_lab_shape(inputs["l"])]):
            return {"ab": tf.cast(network(inputs, training=False), tf.float32)}  # (B, H, W, 2)

    if colorizer.takes_hints:  # the colour-hints variant: colorize_lab takes its hints input too
        @tf.function(input_signature=lab_specs + [tf.TensorSpec([None, None, None, 3], tf.float32, name="hints")])
        def colorize_lab(l, embedding, hints):
            return lab({"l": l, "embedding": embedding, "hints": hints})
    else:
        @tf.function(input_signature=lab_specs)
        def colorize_lab(l, embedding):
            return lab({"l": l, "embedding": embedding})

    @tf.function(
        input_signature=[tf.TensorSpec([None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3], tf.float32, name="inception_input")]
    )
    def embed(inception_input):
        return {"embedding": tf.cast(inception(inception_input, training=False), tf.float32)}  # (B, D)

    # serving_default runs the same method through the two functions above: each network traced once.
    served = type(colorizer)(
        lambda *inputs: colorize_lab(*inputs)["ab"], lambda gray: embed(gray)["embedding"], colorizer.working_size,
        colorizer.embedding_dim, takes_hints=colorizer.takes_hints,
    )  # fmt: skip

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        indices = tf.range(tf.shape(image_bytes)[0])

        def one(args):
            index, data = args
            return served.colorize_encoded(data, max_pixels, name=tf.strings.format("image_bytes[{}]", [index]))

        return {"colorized_bytes": tf.map_fn(one, (indices, image_bytes), fn_output_signature=tf.string, parallel_iterations=1)}

    module.serve, module.colorize_lab, module.embed = serve, colorize_lab, embed
    if colorizer.takes_hints:
        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None, None, 2], tf.float32, name="hint_xy"),
            tf.TensorSpec([None, None, 3], tf.uint8, name="hint_rgb"),
        ])  # fmt: skip
        def with_hints(image_bytes, hint_xy, hint_rgb):
            indices = tf.range(tf.shape(image_bytes)[0])

            def one(args):
                index, data, xy, rgb = args
                name = tf.strings.format("image_bytes[{}]", [index])
                return served.colorize_encoded(data, max_pixels, name=name, hint_xy=xy, hint_rgb=rgb)

            elements = (indices, image_bytes, hint_xy, hint_rgb)
            return {"colorized_bytes": tf.map_fn(one, elements, fn_output_signature=tf.string, parallel_iterations=1)}

        module.with_hints = with_hints
    return module


def signatures_of(module):
    """The SavedModel's signatures: the three of every model, plus ``with_hints`` for a hints model."""
    signatures = {"serving_default": module.serve, "colorize_lab": module.colorize_lab, "embed": module.embed}
    if hasattr(module, "with_hints"):
        signatures["with_hints"] = module.with_hints
    return signatures


def export_saved_model(
    colorizer,
    out_dir,
    inception_weights="imagenet",
    inception=None,
    working_size=None,
    config=None,
    overwrite=False,
    max_pixels=images.DEFAULT_MAX_PIXELS,
    precision="float32",
):
    """Write the SavedModel of ``colorizer`` (a :class:`~koalarization.model.colorizer.Colorizer` from Keras,
    or a Keras network with ``inception``) to ``out_dir``; returns ``out_dir``.

    ``inception``: with a Keras network, an already built embedder ((B, 299, 299, 3) -> (B, D)); when
    None it is built with ``inception_weights`` ("imagenet", "random" or a weights file). ``config``:
    the training config, written to ``export.json``. Raises :class:`OutputExistsError` for a non-empty
    ``out_dir`` unless ``overwrite``. ``precision``: with a Keras network, what the SavedModel computes
    in (a Colorizer brings its own); recorded in ``export.json``.
    A kill at any instant leaves ``out_dir`` as it was or whole and new; the next export cleans up
    after a killed one. Raises ``safeio.LockedError`` while another export writes ``out_dir``.
    """
    out_dir = os.path.abspath(out_dir)
    parent, name = os.path.split(out_dir)
    _check_out_dir(out_dir, overwrite=True)  # not a folder, or not an export: refused before anything is touched beside it
    os.makedirs(parent, exist_ok=True)
    # One exporter per version folder; the lock and the staging folder sit beside it, under names
    # TF Serving does not take for versions.
    with locks.DirLock(parent, "an export (python -m koalarization.export, or train's)", name=f".lock-{name}"):
        safeio.recover_folder(out_dir)  # an export killed while replacing this one puts it back first
        leftovers = re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp$")  # staging folders of older versions
        safeio.clean_temporaries(parent, extra_patterns=[leftovers], targets=re.compile(rf"^{re.escape(name)}$"))
        _check_out_dir(out_dir, overwrite)  # after the clean-up: a model put back just now counts
        _export_locked(colorizer, out_dir, inception_weights, inception, working_size, config, max_pixels, precision)
    return out_dir


class OutputExistsError(errors.OutputError, FileExistsError):
    """``--out`` holds something that is not replaced (a file, another folder, a model without ``--overwrite``)."""


def _check_out_dir(out_dir, overwrite):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "saved_model.pb")):
        raise OutputExistsError(
            f"{out_dir}: not a SavedModel (no saved_model.pb), so not replaced: --overwrite replaces an earlier "
            "export only; choose a version folder such as models/koalarization/1"
        )
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise OutputExistsError(f"{out_dir}: already exists and is not empty (pass --overwrite to replace it)")


def _export_locked(colorizer, out_dir, inception_weights, inception, working_size, config, max_pixels, precision):
    import tensorflow as tf

    from koalarization import colors
    from koalarization.model import inception as embedding
    from koalarization.model.colorizer import EXPORT_INFO_NAME, Colorizer

    if not isinstance(colorizer, Colorizer):
        if inception is None:
            inception = embedding.build_inception(inception_weights)
        colorizer = Colorizer.from_keras(colorizer, inception, working_size or colors.IMAGE_SIZE, config=config, precision=precision)
    if colorizer.networks is None:
        raise errors.UsageError(f"{colorizer.source}: already a SavedModel; export takes a run dir or a .keras file")
    inception = colorizer.networks[1]
    config = config if config is not None else colorizer.config

    module = build_module(colorizer, max_pixels)
    signatures = signatures_of(module)
    staging = safeio.temporary_name(out_dir)  # ".1.tmp-PID-HOST": removed by the next export if this one is killed
    try:
        with safeio.tensorflow_write_errors(out_dir):  # a full disk, say
            tf.saved_model.save(module, staging, signatures=signatures)
        weights = inception_weights if isinstance(inception_weights, dict) else embedding.describe_weights(inception_weights)
        info = {
            "koalarization_version": koalarization.__version__,
            "working_size": colorizer.working_size,
            "precision": colorizer.precision,
            "max_pixels": max_pixels,
            "inception": {"model": inception.name, "weights": weights, "dim": colorizer.embedding_dim, "input_size": colors.INCEPTION_SIZE},
            "signatures": {
                "serving_default": "image_bytes string[B] (JPEG/PNG/GIF/BMP/WebP) -> colorized_bytes string[B] (PNG, same size)",
                "colorize_lab": "l float[B,H,W,1] (L/50-1, H and W multiples of 8), embedding float[B,D] -> ab float[B,H,W,2] (ab/127)",
                "embed": "inception_input float[B,299,299,3] (luma in [-1,1]) -> embedding float[B,D]",
                **({"with_hints": "image_bytes string[B], hint_xy float[B,N,2] (displayed-photo pixels, x first; x < 0: "
                    "padding), hint_rgb uint8[B,N,3] -> colorized_bytes string[B] (PNG); colorize_lab also takes "
                    "hints float[B,H,W,3] (hint ab/127*4, mask 0/1)"} if colorizer.takes_hints else {}),
            },
            "config": config,
        }
        with open(os.path.join(staging, EXPORT_INFO_NAME), "w") as f:
            json.dump(info, f, indent=2, default=str)
        os.chmod(staging, 0o755)
        safeio.replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_from_path(config, inception=None, log=print):
    """Load ``config.model`` (run dir or .keras) as a Colorizer, with the Inception weights of its run, and export."""
    from koalarization.model.colorizer import Colorizer, ModelError, resolve_model, embedding_facts, weights_from_facts

    kind, model_path, run_config = resolve_model(config.model)
    if os.path.exists(config.out) and not os.path.isdir(config.out):  # said before the model loads
        raise OutputExistsError(f"{config.out}: exists and is not a folder")
    if kind != "keras":
        raise ModelError(f"{config.model}: already a SavedModel; export takes a run dir or a .keras file")
    weights = config.inception_weights or weights_from_facts(embedding_facts(run_config)) or "imagenet"
    colorizer = Colorizer.load(config.model, inception, weights, config.working_size, log=log, precision=config.precision)
    log(
        f"exporting {model_path} with Inception weights '{weights}', working size {colorizer.working_size}, "
        f"{colorizer.precision} inside -> {config.out}"
    )
    out = export_saved_model(colorizer, config.out, weights, config=run_config, overwrite=config.overwrite, max_pixels=config.max_pixels)
    log(f"wrote {out} (signatures: {', '.join(SIGNATURES + (('with_hints',) if colorizer.takes_hints else ()))})")
    return out


def run(config, inception=None):
    """The command ``python -m koalarization.export``: print ``config`` as JSON, export; exit status 0."""
    print(json.dumps(dataclasses.asdict(config)))
    try:
        export_from_path(config, inception=inception)
    except KeyboardInterrupt:
        raise errors.Interrupted(f"interrupted: {config.out} holds a whole model, the old one or the new one; run the command again") from None
    except OSError as error:
        if isinstance(error, (errors.KoalarizationError, FileNotFoundError)):
            raise
        # a full disk, a read-only folder: the version folder holds what it held
        raise errors.OutputError(f"{safeio.describe_os_error(error.filename or config.out, error)}; {config.out} is as it was") from None
    return 0


main = cli.command(ExportConfig, run)  # main(argv=None, inception=None): the command line -> its exit status
