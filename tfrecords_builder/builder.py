"""The build: sources -> deterministic shard plan -> decode in parallel -> embed in batches -> shards.

The plan (:mod:`tfrecords_builder.plan`) is a pure function of the keys and the settings: every
key's split, shard and position. This module holds the per-photo work that both runners call
(:func:`prepared_stream`: decode, gray test, letterbox + Lab; :class:`ExampleMaker`: embed in
batches, serialize) and the one-machine runner; :mod:`tfrecords_builder.beam` runs the same work
as an Apache Beam pipeline (``--beam-pipeline-options``). A shard is written under a temporary
name and renamed when whole, then recorded in ``build-state.json``; ``--resume`` skips shards that
are both recorded and present, so no example is lost or duplicated. The records folder is locked
(``.lock``) while a build writes to it.

Gray photos (``colors.is_grayscale`` of the photo, not of its white bars) are skipped with the
reason ``grayscale`` unless ``keep_gray``: they would teach the network that no colour is right.

Decoding (Pillow) and letterboxing + Lab (one TensorFlow graph, traced once) run in a few threads,
one batch ahead of the main thread, which runs the embedding: the builder goes as fast as
Inception allows, and holds about two batches of photos in memory.
"""

import collections
import concurrent.futures
import contextlib
import functools
import json
import os
import re
import sys

import koalarization  # noqa: F401
from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from koalarization import beam_options, cli, colors, errors, images, locks, precision, records, safeio, storage
from koalarization.model import inception as embedding
from tfrecords_builder import plan, sources
from tfrecords_builder.config import BuildConfig

INCEPTION_MODEL = "keras.applications.InceptionResNetV2 (logits)"
INCEPTION_INPUT = "2 * tf.image.rgb_to_grayscale(letterboxed sRGB) - 1, 3 channels (colors.inception_input)"
GRAYSCALE = "grayscale"  # the skip reason of a gray photo
PREP_THREADS = 2  # decode + convert threads; TensorFlow ops inside them use its own thread pool


class BuildError(errors.UsageError):
    """A problem with the inputs or settings; the message is one line that says what to do."""


MANIFEST_NAME, STATE_NAME, LOCK_NAME = records.MANIFEST_NAME, "build-state.json", ".lock"
SHARD_FILE = re.compile(r"^(train|val)-\d{5}\.tfrecord(\.tmp\d+)?$")  # incl. old-style temporaries
OLD_WORKER_FILE = re.compile(r"^(manifest|build-state)-w\d+\.json$|^(train|val)-w\d+-\d{5}\.tfrecord$")
split_of, plan_shards = plan.split_of, plan.plan_shards  # noqa: E305  (where tests and readers found them)


def describe_embedder(config, embedder=None, embedder_info=None):
    """The manifest's description of the embedder (without ``dim``), known without loading it."""
    if embedder is None:
        info = {"model": INCEPTION_MODEL, "weights": embedding.describe_weights(config.inception_weights)}
    else:
        name = getattr(embedder, "name", None) or getattr(embedder, "__name__", None) or type(embedder).__name__
        info = {"model": name, "weights": {"source": "custom"}, **(embedder_info or {})}
    if embedder is None or isinstance(embedder, keras.Model):
        return {**info, "precision": precision.resolve(config.precision)}
    return {**info, "precision": "as the custom embedder computes"}


def load_embedder(config, embedder=None):
    """A callable batch (B, 299, 299, 3) -> (B, D): Inception-ResNet-v2 (``config.inception_weights``)
    or ``embedder``. A Keras embedder runs in ``config.precision`` (its outputs are cast to float32
    where they are stored); a plain callable runs as it is. Called once per process (a Beam worker's
    ``DoFn.setup``)."""
    if embedder is None:
        try:
            embedder = embedding.build_inception(config.inception_weights)  # "random" is seeded there
        except (FileNotFoundError, ValueError) as error:
            raise BuildError(" ".join(str(error).split())) from None
    if isinstance(embedder, keras.Model):
        return _in_precision(embedder, precision.resolve(config.precision)).predict_on_batch  # (B, D), cast by the caller
    return embedder


def _load_embedder(config, embedder, embedder_info):
    """(callable batch -> (B, D), manifest description without dim)."""
    return load_embedder(config, embedder), describe_embedder(config, embedder, embedder_info)


_COPIES = {}  # id(model) -> (model, its bf16 copy): another build in this process reuses the copy and its trace


def _in_precision(model, used):
    """A Keras embedder in ``used`` precision: itself in float32, a bf16 copy made once per process."""
    if used == "float32":
        return model
    if id(model) not in _COPIES or _COPIES[id(model)][0] is not model:
        _COPIES.clear()
        _COPIES[id(model)] = (model, precision.in_precision(model, used))
    return _COPIES[id(model)][1]


def _decode(payload):
    """payload (path str or encoded bytes) -> (pixels (H, W, C) uint8, uint16 or float32, None) or (None, reason)."""
    try:
        return images.read_pixels(payload), None
    except images.ImageError as error:
        return None, error.reason
    except Exception as error:  # anything else a broken file can raise; report it and go on
        return None, f"cannot decode: {type(error).__name__}: {error}"


@functools.lru_cache(maxsize=None)
def _letterbox_and_convert(image_size, dtype="uint8"):
    """Decoded pixels (H, W, C) of ``dtype`` -> (Lab (S, S, 3), Inception input (299, 299, 3), gray?),
    one graph for any H, W and C (``colors.to_float_rgb``, the normalisation every path uses, inside it).

    Traced once per process, size and pixel type, without AutoGraph: tracing per build (as a
    ``tf.data`` map function does) or per photo shape costs more than converting a photo, and the
    normalisation run eagerly costs a sixth of it. The gray test looks at the photo inside the
    letterbox (the white bars have no chroma).
    """

    def convert(pixels):
        rgb = colors.to_float_rgb(pixels)  # (H, W, 3) in [0, 1]
        lab = colors.prepare_lab(rgb, image_size)  # (S, S, 3)
        shape = tf.shape(rgb)
        top, left, height, width = colors.letterbox_box(shape[0], shape[1], image_size)
        gray = colors.is_grayscale(lab[top : top + height, left : left + width])
        return lab, colors.inception_input(rgb), gray

    return tf.function(convert, input_signature=[tf.TensorSpec([None, None, None], tf.as_dtype(dtype))], autograph=False)


def _prepare(position, payload, convert, keep_gray):
    """One input -> dict: position, reason (None if fine), height, width, lab, inception."""
    pixels, reason = _decode(payload)
    if reason is not None:
        return {"position": position, "reason": reason}
    try:
        lab, inception, gray = convert(pixels.dtype.name)(pixels)  # (S, S, 3), (299, 299, 3), ()
    except (tf.errors.ResourceExhaustedError, MemoryError):  # a huge photo on a small machine: skipped, the build goes on
        return {"position": position, "reason": f"out of memory preparing it ({pixels.shape[1]}x{pixels.shape[0]} pixels)"}
    if bool(gray) and not keep_gray:
        return {"position": position, "reason": GRAYSCALE}
    height, width = pixels.shape[:2]
    return {
        "position": position,
        "reason": None,
        "height": height,
        "width": width,
        "lab": lab.numpy(),
        "inception": inception.numpy(),
    }


def prepared_stream(source, positions, image_size, lookahead, keep_gray):
    """The prepared inputs at ``positions``, in order (see :func:`_prepare`).

    Pillow decodes and TensorFlow converts in ``PREP_THREADS`` threads (both release the GIL),
    ``lookahead`` inputs ahead of the consumer: while the caller embeds one batch, the next one is
    being prepared, and memory holds about two batches whatever the size of the dataset.
    """
    convert = functools.partial(_letterbox_and_convert, image_size)  # pixel type -> its graph
    pending = collections.deque()
    with concurrent.futures.ThreadPoolExecutor(PREP_THREADS, thread_name_prefix="prepare") as pool:
        try:
            for position, payload in source.payloads(positions):
                pending.append(pool.submit(_prepare, int(position), payload, convert, keep_gray))
                if len(pending) > lookahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the consumer stopped early (an error): drop the rest
                future.cancel()


class ExampleMaker:
    """Prepared inputs -> the serialized examples of one shard: the per-photo work after
    :func:`prepared_stream` (embedding in batches, serializing), the same in both runners.

    ``keys``: position -> key (the source's list, or a Beam task's dict); ``state``: a dict where
    the embedding's ``dim`` is kept; ``bar``: a tqdm bar or None.
    """

    def __init__(self, config, keys, embed, state, bar=None):
        self.config, self.keys, self.embed, self.state, self.bar = config, keys, embed, state, bar

    def _advance(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def shard_examples(self, positions, stream, skipped):
        """Serialized examples of the shard made of ``positions``, in order; skipped inputs go to ``skipped``."""
        batch = []
        for expected in positions:
            item = next(stream)
            assert int(item["position"]) == int(expected), "source yielded examples out of order"
            if item["reason"] is not None:
                key = self.keys[int(expected)]
                skipped.append({"path": key, "reason": item["reason"]})
                if item["reason"] != GRAYSCALE:  # gray photos are counted at the end, not printed one by one
                    tqdm.write(f"skipped {key}: {item['reason']}")
                self._advance(1)
                continue
            batch.append(item)
            if len(batch) == self.config.batch_size:
                yield from self.embed_and_serialize(batch)
                batch = []
        if batch:
            yield from self.embed_and_serialize(batch)

    def embed_and_serialize(self, batch):
        inputs = np.stack([item["inception"] for item in batch])  # (B, 299, 299, 3)
        vectors = np.asarray(self.embed(inputs), dtype=np.float32)  # (B, D)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise BuildError(f"the embedder returned shape {vectors.shape} for a batch of {len(batch)}; expected (B, D)")
        dim = self.state.setdefault("dim", int(vectors.shape[1]))
        if vectors.shape[1] != dim:
            raise BuildError(f"the embedder returned {vectors.shape[1]}-d vectors, earlier shards hold {dim}-d")
        for item, vector in zip(batch, vectors):
            key = self.keys[item["position"]]
            yield records.serialize_example(key, item["height"], item["width"], item["lab"], vector)
        self._advance(len(batch))


def _read_state(state_path):
    try:
        return safeio.read_json(state_path, "build state", kind=dict)
    except safeio.DamagedFileError as error:
        raise safeio.DamagedFileError(f"{error}; leave out --resume to start this build over") from None


def check_no_old_worker_build(out):
    """Records of a build split by ``--num-workers`` (gone: scale out on Beam) beside a new one would
    leave readers two builds to choose from: refused before any work."""
    old = sorted(n for n in (storage.listdir(out) if storage.isdir(out) else ()) if OLD_WORKER_FILE.match(n))
    if old:
        raise BuildError(
            f"{out} holds {old[0]} of an older build split over --num-workers, which this version no longer makes; "
            "build into an empty folder, or remove that build's manifest-wNN.json, build-state-wNN.json and *-wNN-*.tfrecord files"
        )


def prepare_out_dir(config, out, shards, fingerprint):
    """Clear what must not survive and return ``(state, state path, manifest path)``: the build state
    (finished shards) to go on from. Called with the records folder's lock held."""
    check_no_old_worker_build(out)
    old_temporaries = re.compile(rf"^({re.escape(MANIFEST_NAME)}|{re.escape(STATE_NAME)})\.tmp\d+$")
    ours = re.compile(rf"^({SHARD_FILE.pattern[1:-1]}|{re.escape(MANIFEST_NAME)}|{re.escape(STATE_NAME)})$")
    safeio.clean_temporaries(out, extra_patterns=[old_temporaries], targets=ours)  # leftovers of a killed build
    state_path = os.path.join(out, STATE_NAME)
    state = {"fingerprint": fingerprint, "shards": {}}
    if config.resume and storage.exists(state_path):
        previous = _read_state(state_path)
        if previous.get("fingerprint") != fingerprint:
            raise BuildError(
                f"--resume: {out} holds a build of other inputs or settings; rerun the command that made "
                "it with --resume, or leave out --resume to start this build over"
            )
        state = previous
    planned = {shard.name for shard in shards}
    for name in storage.listdir(out):
        stale = SHARD_FILE.match(name) and (".tmp" in name or not config.resume or name not in planned)
        if stale or name == MANIFEST_NAME or (name == STATE_NAME and not config.resume):
            storage.remove(os.path.join(out, name))  # nothing half-done (or from another build) looks done
    state["shards"] = {n: v for n, v in state["shards"].items() if storage.exists(os.path.join(out, n))}
    return state, state_path, os.path.join(out, MANIFEST_NAME)


_prepare_out_dir = prepare_out_dir


def build(config, embedder=None, progress=True, embedder_info=None):
    """Build the records ``config`` describes and return the manifest (also written to ``config.out``).

    ``embedder``: optional callable or Keras model, (B, 299, 299, 3) in [-1, 1] -> (B, D), used
    instead of Inception-ResNet-v2 (``embedder_info`` optionally describes it in the manifest).
    With ``config.beam_pipeline_options`` the build runs as an Apache Beam pipeline
    (:mod:`tfrecords_builder.beam`; then ``embedder`` must be picklable), else here, in this process.
    Raises :class:`BuildError` or ``embedding.WeightsUnavailableError`` with a one-line message;
    ``safeio.OutputPathError`` for an ``out`` that cannot be a folder, ``safeio.LockedError`` when
    another build writes the same records right now.
    """
    if getattr(config, "beam_pipeline_options", None):
        from tfrecords_builder import beam

        return beam.build(config, embedder, progress, embedder_info)
    say = print if progress else (lambda *a, **k: None)
    say(f"config: {json.dumps(config.to_json())}")
    out = config.out
    safeio.check_output_dir(out, inputs=config.images, what="records folder (--out)")
    with locks.DirLock(out, "python -m tfrecords_builder", warn=say, name=LOCK_NAME):
        return _build_locked(config, embedder, embedder_info, say, progress)


def open_source(config):
    """The config's :class:`sources.Source` (warnings on stderr); a :class:`BuildError` when it cannot be used."""
    try:
        return sources.make_source(config, warn=lambda line: print(line, file=sys.stderr))
    except sources.SourceError as error:
        raise BuildError(str(error)) from None


def plan_build(config, source, info):
    """``(shards, fingerprint)`` of the build of ``source`` (:mod:`tfrecords_builder.plan`)."""
    shards = plan.plan_shards(source.keys, config, source.shuffled)
    return shards, plan.fingerprint(config, source.description, info, shards, source.keys)


def say_plan(say, source, shards, todo):
    total = sum(len(s.positions) for s in shards)
    say(
        f"{source.description}: {len(source.keys)} inputs"
        + (f" ({len(source.duplicates)} duplicates left out)" if source.duplicates else "")
        + f"; {total} in {len(shards)} shards"
        + (f", {len(shards) - len(todo)} already done" if len(todo) < len(shards) else "")
    )


def say_done(say, manifest, shards, out, manifest_path):
    kept = {split: manifest["splits"][split]["examples"] for split in records.SPLITS}
    gray = sum(1 for s in manifest["skipped"] if s["reason"] == GRAYSCALE)
    say(
        f"wrote {sum(kept.values())} examples (train {kept['train']}, val {kept['val']}) in {len(shards)} shards "
        f"to {out}; skipped {len(manifest['skipped'])}"
        + (f" ({gray} gray photos; --keep-gray keeps them)" if gray else "")
        + f"; manifest {manifest_path}"
    )


def _build_locked(config, embedder, embedder_info, say, progress):
    source = open_source(config)
    embed, info = _load_embedder(config, embedder, embedder_info)
    shards, fingerprint = plan_build(config, source, info)
    out = config.out
    state, state_path, manifest_path = prepare_out_dir(config, out, shards, fingerprint)
    todo = [s for s in shards if s.name not in state["shards"]]
    say_plan(say, source, shards, todo)
    with tqdm(total=sum(len(s.positions) for s in todo), unit="img", desc="building", disable=not progress) as bar:
        maker = ExampleMaker(config, source.keys, embed, state, bar)
        for split in records.SPLITS:
            of_split = [s for s in todo if s.split == split]
            if of_split:
                _build_split(config, source, of_split, maker, state, state_path)
    manifest = write_manifest(config, source, shards, state, info, embed, manifest_path)
    say_done(say, manifest, shards, out, manifest_path)
    return manifest


def _build_split(config, source, shards, maker, state, state_path):
    """Write ``shards`` (all of one split) in order, recording each in ``state`` when its temporary file
    is whole, before the rename: a shard under its final name is always recorded (a kill between the
    two leaves a record without its file, which ``--resume`` drops and builds again)."""
    positions = np.concatenate([s.positions for s in shards])
    stream = prepared_stream(source, positions, config.image_size, config.batch_size, config.keep_gray)
    with contextlib.closing(stream):  # on an error, the preparing threads stop now
        for shard in shards:
            skipped = []

            def record(count, name=shard.name, skipped=skipped):
                state["shards"][name] = {"examples": count, "skipped": skipped}
                safeio.write_json(state_path, state)

            records.write_shard(os.path.join(config.out, shard.name), maker.shard_examples(shard.positions, stream, skipped), record)


def write_manifest(config, source, shards, state, info, embed, manifest_path):
    """Write and return the manifest of the finished build (``embed`` is called once only when nothing was embedded)."""
    if "dim" not in state:  # nothing embedded (every input skipped): ask the embedder once
        state["dim"] = int(np.asarray(embed(np.zeros((1, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3), np.float32))).shape[-1])
    splits = {split: {"examples": 0, "shards": []} for split in records.SPLITS}
    skipped = []
    for shard in shards:
        done = state["shards"][shard.name]
        splits[shard.split]["examples"] += done["examples"]
        splits[shard.split]["shards"].append(shard.name)
        skipped += done["skipped"]
    emb = {**info, "dim": state["dim"], "input_size": colors.INCEPTION_SIZE, "input": INCEPTION_INPUT}
    extra = {
        "source": source.description,
        "inputs": len(source.keys),
        "duplicates": list(source.duplicates),
        "not_searched": source.problems,
        "gray_photos": "kept" if config.keep_gray else f"skipped (chroma_level < {colors.GRAY_CHROMA} Lab units)",
        "config": config.to_json(),
    }
    manifest = records.make_manifest(config.image_size, emb, splits, skipped, **extra)
    safeio.write_json(manifest_path, manifest)
    return manifest


def run(config):
    """The command ``python -m tfrecords_builder``: check ``--out``, :func:`build`; exit status 0
    (a failure is an error of the table in :mod:`koalarization.errors`, with one line)."""
    if config.beam_pipeline_options is not None:
        beam_options.parse(config.beam_pipeline_options)  # a malformed string or unknown runner: one line, status 2
    with safeio.removed_if_left_empty(config.out):  # a build that stops before writing anything leaves no empty --out
        safeio.check_output_dir(config.out, inputs=config.images, what="records folder (--out)")
        try:
            build(config)
        except KeyboardInterrupt:
            raise errors.Interrupted(f"interrupted: finished shards in {config.out} are kept; run the same command with --resume to finish") from None
        except tf.errors.ResourceExhaustedError as error:  # out of memory while embedding a batch
            first = (error.message or "").strip().splitlines()[:1]
            raise BuildError(
                f"out of memory while embedding a batch of {config.batch_size} ({first[0] if first else 'ResourceExhaustedError'}); "
                "the finished shards are kept: run the same command with a smaller --batch-size and --resume"
            ) from None
        except OSError as error:  # a full disk, say (the shard writer's errors are OSErrors: records.write_shard)
            if isinstance(error, (errors.KoalarizationError, FileNotFoundError)):
                raise
            reason = safeio.describe_os_error(error.filename or config.out, error)
            raise errors.OutputError(
                f"{reason}; the finished shards are kept: {safeio.what_to_do(error)} and run the same command with --resume"
            ) from None
    return 0


main = cli.command(BuildConfig, run)  # for callers that have TensorFlow already; the command parses first
