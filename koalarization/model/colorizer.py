"""A colorizer you can run: the network, the Inception embedder and the method, loaded one way.

    from koalarization.model.colorizer import Colorizer
    colorizer = Colorizer.load("runs/smoke")       # a run dir, a .keras file or a SavedModel
    [colorized] = colorizer.colorize([rgb])        # sRGB (H, W, 3) in [0, 1] -> uint8 (H, W, 3), same size

``colorize``, ``evaluate``, ``export``, ``demo`` and the notebooks all go through this object, so
every door gets the same pixels: the steps are the functions of :mod:`koalarization.model.method`
(luminance, letterbox, Inception input, un-letterbox, upsampling, recombination) and of
:mod:`koalarization.model.decode` (bytes -> sRGB in the graph), and the exported SavedModel's
``serving_default`` is traced from :meth:`Colorizer.colorize_encoded`, not written beside it.

A colour-hints model (``python -m koalarization.train --hints``, an addition to the paper) has
``colorizer.takes_hints``; ``colorize(rgbs, hints=[[(x, y, (r, g, b)), ...], ...])`` then steers
it with points in pixels of each photo as displayed (see :mod:`koalarization.hintspec` and
:mod:`koalarization.model.hints`), and the SavedModel's ``with_hints`` is traced from
:meth:`Colorizer.colorize_encoded` with the hint tensors. Without hints such a model runs the
same path with all-zero hint channels.

Both networks run through ``tf.function``\\ s with a fixed input signature (``(None, S, S, 1)``,
``(None, D)``, ``(None, 299, 299, 3)``), traced once: the one place where compiled inference or
another precision would go.
"""

import os
import zipfile

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import colors, errors, hintspec, safeio
from koalarization.errors import UsageError
from koalarization.model import batches, decode
from koalarization.model import hints as hint_ops
from koalarization.model import method as inference
from koalarization import precision as precisions

from koalarization.constants import CONFIG_FILE as RUN_CONFIG_NAME, EXPORT_INFO_FILE as EXPORT_INFO_NAME, MODEL_FILE as RUN_MODEL_NAME  # noqa: E402
from koalarization.model.batches import BATCH_PIXELS  # noqa: E402,F401  (colorize reads it here)
PNG_COMPRESSION = 1  # serving_default's zlib level in tf.io.encode_png: lossless like any level, ~10x faster to write than the default 6, ~15% bigger


class ModelError(errors.UsageError):
    """A ``--model`` that cannot be used; ``str()`` names the path and the problem."""


class DamagedModelError(ModelError, errors.DamagedError):
    """A model file that is not what it says (a ``.keras`` that is no zip archive)."""

    exit_status = errors.EXIT_DAMAGED


# -- the known config schemas ----------------------------------------------------------------------
# A run dir's config.json (written by train): {"config": {...}, "records": {"image_size", "embedding": {...}}, ...}
# A SavedModel's export.json (written by export): {"working_size", "inception": {...}, "config": <the run's config.json>}
def embedding_facts(run_config):
    """The ``{"model", "weights": {...}, "dim", ...}`` record of the embedding a run was trained on, or None."""
    facts = records_facts(run_config).get("embedding")
    return facts if isinstance(facts, dict) else None


def records_facts(run_config):
    """A run config's ``records`` object, the facts of the records it trained on ({} when it has none,
    or a hand-edited one of another shape)."""
    records = run_config.get("records") if isinstance(run_config, dict) else None
    return records if isinstance(records, dict) else {}


def training_image_size(run_config):
    """The image size a run was trained at, or None."""
    size = records_facts(run_config).get("image_size")
    return size if isinstance(size, int) else None


def weights_from_facts(facts):
    """An embedding record's ``weights`` -> what ``embedding.build_inception`` takes, or None."""
    weights = (facts or {}).get("weights")
    source = weights.get("source") if isinstance(weights, dict) else None
    if source in ("imagenet", "random"):
        return source
    if source == "file":
        return weights.get("path")
    return None


def is_saved_model(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve_model(path):
    """``--model`` -> ``(kind, model_path, config)``: kind "keras" or "saved_model"; config the run's
    ``config.json`` (keras) or the ``export.json`` (saved_model) as a dict, or None.

    Cheap (no TensorFlow work): commands call it before building anything.
    """
    if not os.path.exists(path):
        raise ModelError(f"{path}: model not found")
    if is_saved_model(path):
        info = os.path.join(path, EXPORT_INFO_NAME)
        return "saved_model", path, _read_config(info)
    if os.path.isdir(path):
        model_path = os.path.join(path, RUN_MODEL_NAME)
        if not os.path.isfile(model_path):
            raise ModelError(f"{path}: neither a run dir (no {RUN_MODEL_NAME}) nor a SavedModel (no saved_model.pb)")
    elif path.endswith(".keras"):
        model_path = path
    else:
        raise ModelError(f"{path}: expected a run dir, a .keras file or a SavedModel dir")
    return "keras", model_path, _read_config(os.path.join(os.path.dirname(os.path.abspath(model_path)), RUN_CONFIG_NAME))


def _read_config(path):
    if not os.path.isfile(path):
        return None
    try:
        return safeio.read_json(path, "model config", kind=dict)
    except safeio.DamagedFileError as error:
        raise DamagedModelError(str(error)) from None


def check_embedding_dim(colorizer_dim, embedder_dim, facts=None, model_path="the colorizer"):
    """Raise a clear :class:`ModelError` when the colorizer was trained on another embedding."""
    if colorizer_dim == embedder_dim:
        return
    trained_on = f" (it was trained on '{facts.get('model')}' embeddings)" if facts and facts.get("model") else ""
    raise ModelError(
        f"{model_path}: the colorizer expects {colorizer_dim}-d embeddings{trained_on}, but the embedder "
        f"gives {embedder_dim}-d; it can only colorize with the embedding model it was trained on"
    )


def load_keras_network(model_path):
    """Load a ``.keras`` colorizer in Keras' safe mode (a Lambda layer is refused: a file cannot run code),
    computing in float32 whatever policy it was trained under (see :func:`precision.in_float32`)."""
    import keras

    from koalarization.model import network as _model  # noqa: F401  (registers FusionLayer)
    from koalarization import precision

    if os.path.isfile(model_path) and not zipfile.is_zipfile(model_path):
        raise DamagedModelError(f"{model_path}: not a .keras file (a .keras file is a zip archive; this one is damaged or something else)")
    try:
        network = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as error:  # keras raises ValueError, OSError, zipfile errors... for a bad file
        raise ModelError(f"{model_path}: cannot load the colorizer: {str(error).splitlines()[0] if str(error) else error}") from None
    return precision.in_float32(network)


def network_takes_hints(network):
    """Whether a Keras colorizer network is the colour-hints variant (it has a ``hints`` input)."""
    inputs = network.input if isinstance(network.input, dict) else dict(zip(network.input_names, network.inputs))
    return "hints" in inputs


def embedding_dim_of(network):
    """The embedding size a Keras colorizer network expects."""
    inputs = network.input if isinstance(network.input, dict) else dict(zip(network.input_names, network.inputs))
    return int(inputs["embedding"].shape[-1])


def encode_png(colorized):
    """uint8 (H, W, 3) -> PNG bytes (scalar string): serving_default's encoder, an op of the graph (colorize writes the same pixels with koalarization.pngfile)."""
    return tf.io.encode_png(colorized, compression=PNG_COMPRESSION)


# -- the object ----------------------------------------------------------------------------------
class Colorizer:
    """The colorization network, its embedder and the method; see the module docstring.

    ``predict_ab``: (l (B, S, S, 1) scaled, embedding (B, D)) -> ab (B, S, S, 2) scaled; with
    ``takes_hints`` (the colour-hints variant) it also takes the hints input (B, S, S, 3) third;
    ``embed``: Inception input (B, 299, 299, 3) -> (B, D). ``networks``: the Keras
    ``(colorizer, inception)`` pair when loaded from Keras (what :mod:`koalarization.export` saves).
    ``precision``: "float32" or "bfloat16", what the networks compute in (inputs and outputs stay float32).
    """

    precision = "float32"

    def __init__(self, predict_ab, embed, working_size, embedding_dim, source="", config=None, networks=None, takes_hints=False):
        self.working_size = inference.check_working_size(int(working_size))
        self.embedding_dim = int(embedding_dim)
        self.takes_hints = bool(takes_hints)
        self.predict_ab, self.embed = predict_ab, embed
        self.source, self.config, self.networks = source, config, networks
        self.compiled = self._compile()

    # -- loading -------------------------------------------------------------------------------------
    @classmethod
    def from_keras(cls, network, inception, working_size=colors.IMAGE_SIZE, source="", config=None, precision="float32"):
        """From a Keras colorizer network and a Keras embedder (None: none), each run by a ``tf.function`` traced once.

        ``precision`` ("float32", "bfloat16" or "auto"): the one place it is applied. In bfloat16 both
        networks are copies built under the ``bfloat16`` dtype policy; inputs and outputs stay float32.
        """
        size, dim = int(working_size), embedding_dim_of(network)
        if inception is not None:
            check_embedding_dim(dim, int(inception.outputs[0].shape[-1]), embedding_facts(config), source or "the colorizer")
        used = precisions.resolve(precision)
        network = precisions.in_precision(network, used)
        inception = precisions.in_precision(inception, used) if inception is not None else None

        takes_hints = network_takes_hints(network)
        specs = [tf.TensorSpec([None, size, size, 1], tf.float32), tf.TensorSpec([None, dim], tf.float32)]
        if takes_hints:
            @tf.function(input_signature=specs + [tf.TensorSpec([None, size, size, 3], tf.float32)], autograph=False)
            def predict_ab(l, embedding, hints):
                return tf.cast(network({"l": l, "embedding": embedding, "hints": hints}, training=False), tf.float32)  # (B, S, S, 2)
        else:
            @tf.function(input_signature=specs, autograph=False)
            def predict_ab(l, embedding):
                return tf.cast(network({"l": l, "embedding": embedding}, training=False), tf.float32)  # (B, S, S, 2)

        @tf.function(
            input_signature=[tf.TensorSpec([None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3], tf.float32)],
            autograph=False,
        )
        def embed(gray):
            return tf.cast(inception(gray, training=False), tf.float32)  # (B, D)

        colorizer = cls(predict_ab, embed if inception is not None else None, size, dim, source, config, (network, inception), takes_hints)
        colorizer.precision = used
        return colorizer

    @classmethod
    def load(cls, path, inception=None, inception_weights=None, working_size=None, log=print, embedder=True, precision=None):
        """A run dir, a ``.keras`` file or a SavedModel -> a :class:`Colorizer`.

        ``inception``: an already built Keras embedder (default: Inception-ResNet-v2 with the weights
        the run's config records, or ``inception_weights``). ``working_size``: default the training
        image size (or the export's), else 224. ``embedder=False``: no Inception is built, for
        callers that bring their own embeddings (``evaluate --records``); only ``predict_ab`` works.
        ``precision``: float32, bfloat16 or auto (default: float32; a SavedModel runs in the precision it
        was exported with, and an explicit other one is a :class:`ModelError`).
        """
        if working_size is not None:
            inference.check_working_size(working_size)
        kind, model_path, config = resolve_model(path)
        if kind == "saved_model":
            return cls._from_saved_model(model_path, config or {}, inception_weights, working_size, precision)
        from koalarization.model import inception as embedding

        network = load_keras_network(model_path)
        facts = embedding_facts(config)
        size = working_size or training_image_size(config) or colors.IMAGE_SIZE
        if working_size is None and training_image_size(config) is not None:
            try:
                inference.check_working_size(size)
            except ValueError as error:
                raise ModelError(f"{model_path}: the image size in its {RUN_CONFIG_NAME} is unusable ({error}); pass --working-size") from None
        used = precisions.resolve(precision or "float32")
        if not embedder:
            return cls.from_keras(network, None, size, model_path, config, used)
        if inception is None:
            check_embedding_dim(embedding_dim_of(network), embedding.EMBEDDING_DIM, facts, model_path)
            weights = inception_weights or weights_from_facts(facts) or "imagenet"
            log(f"building Inception-ResNet-v2 with '{weights}' weights" + (f", running in {used}" if used != "float32" else ""))
            inception = embedding.build_inception(weights)
        return cls.from_keras(network, inception, size, model_path, config, used)

    @classmethod
    def _from_saved_model(cls, path, info, inception_weights=None, working_size=None, precision=None):
        if inception_weights:
            raise ModelError(f"{path}: a SavedModel carries its own Inception weights; drop --inception-weights")
        exported = info.get("precision", "float32")
        if precision not in (None, "auto") and precisions.resolve(precision) != exported:
            raise ModelError(f"{path}: this SavedModel runs in {exported} (it was exported so); drop --precision or export again with --precision {precision}")
        try:
            loaded = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as error:  # a truncated saved_model.pb, missing variables...
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DamagedModelError(f"{path}: cannot load the SavedModel ({first}); export it again") from None
        missing = {"colorize_lab", "embed"} - set(loaded.signatures)
        if missing:
            raise ModelError(f"{path}: SavedModel lacks the signature(s) {sorted(missing)}; re-export it")
        lab, embed = loaded.signatures["colorize_lab"], loaded.signatures["embed"]
        dim = int(lab.structured_input_signature[1]["embedding"].shape[-1])
        takes_hints = "hints" in lab.structured_input_signature[1]
        colorizer = cls(
            (lambda l, e, h: lab(l=l, embedding=e, hints=h)["ab"]) if takes_hints else (lambda l, e: lab(l=l, embedding=e)["ab"]),
            lambda gray: embed(inception_input=gray)["embedding"],
            working_size or info.get("working_size") or colors.IMAGE_SIZE,
            dim,
            path,
            info.get("config"),
            takes_hints=takes_hints,
        )
        colorizer.saved_model = loaded  # keeps the functions' variables alive
        colorizer.precision = exported
        return colorizer

    # -- the method ----------------------------------------------------------------------------------
    def _compile(self):
        """The method's three steps as ``tf.function``\\ s of fixed input signatures, each traced once
        whatever the model source, batch or photo size: ``prepare`` (one photo -> network inputs),
        ``networks`` (embedder then colorizer, on a batch) and ``recombine`` (full resolution)."""
        size = self.working_size
        photo = tf.TensorSpec([None, None, 3], tf.float32)
        prepare = tf.function(lambda rgb: inference.network_inputs(rgb, size), input_signature=[photo], autograph=False)
        recombine = tf.function(
            lambda ab, rgb: inference.recombine_in_strips(ab, rgb, size),
            input_signature=[tf.TensorSpec([size, size, 2], tf.float32), photo], autograph=False,
        )  # fmt: skip
        hint_map = tf.function(
            lambda height_width, xy, rgb: hint_ops.hint_map(height_width[0], height_width[1], xy, rgb, size),
            input_signature=[tf.TensorSpec([2], tf.int32), tf.TensorSpec([None, 2], tf.float32), tf.TensorSpec([None, 3], tf.uint8)],
            autograph=False,
        )  # fmt: skip
        networks = None
        if self.embed is not None:
            inception = colors.INCEPTION_SIZE
            specs = [tf.TensorSpec([None, size, size, 1], tf.float32), tf.TensorSpec([None, inception, inception, 3], tf.float32)]
            if self.takes_hints:
                specs.append(tf.TensorSpec([None, size, size, 3], tf.float32))
            networks = tf.function(self._networks, input_signature=specs, autograph=False)  # (B, S, S, 2)
        return {"prepare": prepare, "networks": networks, "recombine": recombine, "hint_map": hint_map}

    def _networks(self, l, gray, hints=None):
        """Embedder then colorizer; a hints model gets its hints input (B, S, S, 3) third."""
        if self.takes_hints:
            return self.predict_ab(l, self.embed(gray), hints)
        return self.predict_ab(l, self.embed(gray))

    def _step(self, name, plain, *args):
        """Eagerly: the compiled step; inside a graph being traced (the SavedModel): the plain ops."""
        return self.compiled[name](*args) if tf.executing_eagerly() else plain(*args)

    def prepare(self, rgb):
        """One sRGB photo (H, W, 3) in [0, 1] -> (l (S, S, 1), Inception input (299, 299, 3))."""
        return self._step("prepare", lambda x: inference.network_inputs(x, self.working_size), tf.convert_to_tensor(rgb, tf.float32))

    def predict_prepared(self, pairs, hint_maps=None):
        """``prepare`` outputs of B photos -> predicted ab (B, S, S, 2), scaled as in training.

        ``hint_maps``: per photo its hints input (S, S, 3) (:meth:`hint_map`) or None (no hints:
        zeros); only for a hints model, which gets zeros when it is left out."""
        l = tf.stack([p[0] for p in pairs])  # (B, S, S, 1)
        gray = tf.stack([p[1] for p in pairs])  # (B, 299, 299, 3)
        if not self.takes_hints:
            if hint_maps is not None and any(m is not None for m in hint_maps):
                self.require_hints()
            return self._step("networks", self._networks, l, gray)
        empty = hint_ops.no_hints(1, self.working_size)[0]  # (S, S, 3)
        hints = tf.stack([empty if m is None else m for m in (hint_maps or [None] * len(pairs))])  # (B, S, S, 3)
        return self._step("networks", self._networks, l, gray, hints)

    def predict(self, rgbs, hint_maps=None):
        """sRGB images (each (H_i, W_i, 3) in [0, 1]) -> predicted ab (B, S, S, 2), scaled as in training."""
        pairs = [self.prepare(rgb) for rgb in rgbs]
        return self.predict_prepared(pairs) if hint_maps is None else self.predict_prepared(pairs, hint_maps)

    def predict_embedded(self, l, embedding, hints=None):
        """l (B, S, S, 1) scaled and embeddings (B, D) -> ab (B, S, S, 2): the colorizer alone (``evaluate
        --records``); a hints model takes ``hints`` (B, S, S, 3), zeros when left out."""
        if not self.takes_hints:
            return self.predict_ab(l, embedding)
        l = tf.convert_to_tensor(l, tf.float32)
        return self.predict_ab(l, embedding, hint_ops.no_hints(tf.shape(l)[0], self.working_size) if hints is None else hints)

    # -- colour hints (the hints variant) -----------------------------------------------------------
    def require_hints(self):
        """A one-line UsageError unless this is a hints model."""
        if not self.takes_hints:
            raise UsageError(f"{self.source or 'this model'}: takes no colour hints (it is the automatic model; "
                             "train the hints variant with python -m koalarization.train --hints)")  # fmt: skip

    def check_hints(self, hints, rgbs, names=None):
        """``hints`` (one list of ``(x, y, (r, g, b))`` per photo, or None) -> the checked lists, or a one-line
        UsageError: a point outside its photo, a malformed colour, hints for a model without the variant."""
        if hints is None:
            return None
        if any(hints):
            self.require_hints()
        return hintspec.check_photos(hints, [(int(rgb.shape[1]), int(rgb.shape[0])) for rgb in rgbs], names)

    def hint_map(self, rgb, points):
        """One photo (H, W, 3) and its checked points -> its hints input (S, S, 3), or None for no points."""
        return self._hint_map(tf.shape(rgb)[:2], *hint_ops.point_tensors(points)) if points else None

    def _hint_map(self, height_width, xy, colours):
        plain = lambda hw, xy, c: hint_ops.hint_map(hw[0], hw[1], xy, c, self.working_size)  # noqa: E731
        return self._step("hint_map", plain, tf.cast(height_width, tf.int32), xy, colours)

    def recombine(self, ab_scaled, rgb):
        """One image's predicted ab (S, S, 2) + its sRGB (H, W, 3) -> the colorized uint8 (H, W, 3), in strips."""
        plain = lambda ab, x: inference.recombine_in_strips(ab, x, self.working_size)  # noqa: E731
        return self._step("recombine", plain, tf.convert_to_tensor(ab_scaled, tf.float32), tf.convert_to_tensor(rgb, tf.float32))

    def colorize(self, rgbs, hints=None, names=None):
        """sRGB images (each (H_i, W_i, 3) in [0, 1], tensors or numpy) -> uint8 sRGB tensors of the same sizes.

        ``hints`` (a hints model only): one list per photo of ``(x, y, (r, g, b))``, x, y in pixels of
        the photo as given (as displayed: after EXIF orientation), r, g, b ints 0-255; ``names`` name
        the photos in the one-line :class:`~koalarization.errors.UsageError` of a bad hint."""
        rgbs = [tf.convert_to_tensor(rgb, tf.float32) for rgb in rgbs]
        hints = self.check_hints(hints, rgbs, names)
        maps = None if hints is None else [self.hint_map(rgb, points) for rgb, points in zip(rgbs, hints)]
        ab = self.predict(rgbs) if maps is None else self.predict(rgbs, maps)  # (B, S, S, 2)
        return [self.recombine(ab[i], rgb) for i, rgb in enumerate(rgbs)]

    def colorize_encoded(self, image_bytes, max_pixels=0, name="image", hint_xy=None, hint_rgb=None):
        """Encoded image (scalar string) -> colorized PNG (scalar string) of the same size: the served method.

        ``hint_xy`` (N, 2) float32 in displayed-photo pixels, x first, negative x = padding, and
        ``hint_rgb`` (N, 3) uint8 (a hints model only): ``with_hints``; a point outside the photo
        fails the call (``InvalidArgumentError``, one line)."""
        rgb = decode.decode(image_bytes, max_pixels, name)  # (H, W, 3)
        if hint_xy is None:
            return encode_png(self.colorize([rgb])[0])
        shape = tf.shape(rgb)
        with tf.control_dependencies([hint_ops.check_inside(hint_xy, shape[0], shape[1], name)]):
            hint_map = self._hint_map(shape[:2], tf.identity(hint_xy), hint_rgb)  # (S, S, 3)
        ab = self.predict([rgb], [hint_map])  # (1, S, S, 2)
        return encode_png(self.recombine(ab[0], rgb))

    # -- batches of files ------------------------------------------------------------------------------
    def colorize_stream(self, items, batch_size=8, batch_pixels=BATCH_PIXELS, finish=None, workers=0, hints=None):
        """``(key, rgb)`` pairs -> ``(key, rgb, colorized or the exception)`` in input order, in batches:
        see :func:`koalarization.model.batches.colorize_stream`."""
        return batches.colorize_stream(self, items, batch_size, batch_pixels, finish, workers, hints)
