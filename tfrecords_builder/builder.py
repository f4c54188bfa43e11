"""The build: sources -> deterministic shard plan -> decode in parallel -> embed in batches -> shards.

The plan is a pure function of the keys and the settings: each key's split and worker come from
its SHA-1 (so a photo always lands in the same split, whatever the order or machine), and each
split's keys are ordered by another hash of the key (``sources.order_of``) before they are cut
into shards of ``shard_size``, so every shard is a uniform mix of the split, as TFDS does (a TFDS
source keeps its own order, already shuffled). A shard is written under a temporary name and
renamed when whole, then recorded in ``build-state.json``; ``--resume`` skips shards that are
both recorded and present, so no example is lost or duplicated. The records folder is locked
(``.lock``, or ``.lock-wNN`` per worker) while a build writes to it.

Gray photos (``colors.is_grayscale`` of the photo, not of its white bars) are skipped with the
reason ``grayscale`` unless ``keep_gray``: they would teach the network that no colour is right.

Decoding (Pillow) and letterboxing + Lab (one TensorFlow graph, traced once) run in a few threads,
one batch ahead of the main thread, which runs the embedding: the builder goes as fast as
Inception allows, and holds about two batches of photos in memory.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
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

from koalarization import cli, colors, errors, images, locks, precision, records, safeio
from koalarization.model import inception as embedding
from tfrecords_builder import sources
from tfrecords_builder.config import BuildConfig

INCEPTION_MODEL = "keras.applications.InceptionResNetV2 (logits)"
INCEPTION_INPUT = "2 * tf.image.rgb_to_grayscale(letterboxed sRGB) - 1, 3 channels (colors.inception_input)"
GRAYSCALE = "grayscale"  # the skip reason of a gray photo
PREP_THREADS = 2  # decode + convert threads; TensorFlow ops inside them use its own thread pool


class BuildError(errors.UsageError):
    """A problem with the inputs or settings; the message is one line that says what to do."""


@dataclasses.dataclass(frozen=True)
class Shard:
    split: str
    name: str
    positions: tuple  # indices into source.keys, in the order written


def _key_hash(key):
    return hashlib.sha1(key.encode("utf-8")).digest()


def split_of(key, val_fraction):
    """'val' or 'train', from the first 8 bytes of SHA-1(key) read as a number in [0, 1)."""
    unit = int.from_bytes(_key_hash(key)[:8], "big") / 2.0**64
    return "val" if unit < val_fraction else "train"


def worker_of(key, num_workers):
    """Which worker builds ``key``: the next 8 bytes of SHA-1(key) modulo ``num_workers``."""
    return int.from_bytes(_key_hash(key)[8:16], "big") % num_workers


def plan_shards(keys, config, shuffled=False):
    """This worker's shards: each split's keys ordered by ``sources.order_of`` (kept in source
    order when the source is ``shuffled`` already), cut into ``shard_size`` pieces."""
    worker = config.worker_index if config.num_workers > 1 else None
    by_split = {split: [] for split in records.SPLITS}
    for position, key in enumerate(keys):
        if worker_of(key, config.num_workers) == config.worker_index:
            by_split[split_of(key, config.val_fraction)].append(position)
    shards = []
    for split, positions in by_split.items():
        if not shuffled:
            positions.sort(key=lambda p: sources.order_of(keys[p]))
        for index, start in enumerate(range(0, len(positions), config.shard_size)):
            chunk = tuple(positions[start : start + config.shard_size])
            shards.append(Shard(split, records.shard_name(split, index, worker), chunk))
    return shards


def _file_names(config):
    """(manifest, state file, lock name, regex of this worker's shard files incl. old-style temporaries)."""
    if config.num_workers == 1:
        shards = re.compile(r"^(train|val)-\d{5}\.tfrecord(\.tmp\d+)?$")
        return records.MANIFEST_NAME, "build-state.json", ".lock", shards
    w = f"w{config.worker_index:02d}"
    shards = re.compile(rf"^(train|val)-{w}-\d{{5}}\.tfrecord(\.tmp\d+)?$")
    return f"manifest-{w}.json", f"build-state-{w}.json", f".lock-{w}", shards


def _load_embedder(config, embedder, embedder_info):
    """(callable batch -> (B, D), manifest description without dim).

    A Keras embedder (Inception, or one passed in) runs in ``config.precision`` (its outputs are
    cast to float32 where they are stored); a plain callable runs as it is.
    """
    if embedder is None:
        try:
            embedder = embedding.build_inception(config.inception_weights)  # "random" is seeded there
        except (FileNotFoundError, ValueError) as error:
            raise BuildError(" ".join(str(error).split())) from None
        info = {"model": INCEPTION_MODEL, "weights": embedding.describe_weights(config.inception_weights)}
    else:
        name = getattr(embedder, "name", None) or getattr(embedder, "__name__", None) or type(embedder).__name__
        info = {"model": name, "weights": {"source": "custom"}, **(embedder_info or {})}
    if isinstance(embedder, keras.Model):
        used = precision.resolve(config.precision)
        return _in_precision(embedder, used).predict_on_batch, {**info, "precision": used}  # (B, D), cast by the caller
    return embedder, {**info, "precision": "as the custom embedder computes"}


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


def _prepared_stream(source, positions, image_size, lookahead, keep_gray):
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


class _Builder:
    def __init__(self, config, source, embed, state, bar):
        self.config, self.source, self.embed, self.state, self.bar = config, source, embed, state, bar

    def shard_examples(self, shard, stream, skipped):
        """Serialized examples of ``shard``, in order; skipped inputs go to ``skipped``."""
        batch = []
        for expected in shard.positions:
            item = next(stream)
            assert int(item["position"]) == expected, "source yielded examples out of order"
            if item["reason"] is not None:
                key = self.source.keys[expected]
                skipped.append({"path": key, "reason": item["reason"]})
                if item["reason"] != GRAYSCALE:  # gray photos are counted at the end, not printed one by one
                    tqdm.write(f"skipped {key}: {item['reason']}")
                self.bar.update(1)
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
            key = self.source.keys[item["position"]]
            yield records.serialize_example(key, item["height"], item["width"], item["lab"], vector)
        self.bar.update(len(batch))


def _read_state(state_path):
    try:
        return safeio.read_json(state_path, "build state", kind=dict)
    except safeio.DamagedFileError as error:
        raise safeio.DamagedFileError(f"{error}; leave out --resume to start this build over") from None


def _check_no_other_build(config, out):
    """A one-worker build and a build over workers (or over another number of them) in one folder would
    leave readers two manifests to choose from: refused before any work."""
    workers = records.worker_manifests(out)
    single = os.path.exists(os.path.join(out, records.MANIFEST_NAME))
    other = None
    if config.num_workers == 1 and workers:
        other = f"{os.path.basename(workers[0][1])} of a build over several workers"
    elif config.num_workers > 1 and single:
        other = f"{records.MANIFEST_NAME} of a one-worker build"
    elif config.num_workers > 1:
        for index, path in workers:
            try:
                count = records.worker_count(safeio.read_json(path, "worker manifest", kind=dict))
            except safeio.DamagedFileError:
                continue  # damaged: this worker's own is rewritten; another's is reported by readers
            if count not in (None, config.num_workers) or index >= config.num_workers:
                other = f"{os.path.basename(path)} of a build over {count} workers"
                break
    if other:
        raise BuildError(f"{out} holds {other}; build into an empty folder, or remove that build's manifest and shards")


def _prepare_out_dir(config, out, plan, fingerprint):
    """Clear what must not survive and return the build state (finished shards) to go on from.
    Called with this worker's lock held."""
    _check_no_other_build(config, out)
    manifest_name, state_name, _, shard_pattern = _file_names(config)
    old_temporaries = re.compile(rf"^({re.escape(manifest_name)}|{re.escape(state_name)})\.tmp\d+$")
    ours = re.compile(rf"^({shard_pattern.pattern[1:-1]}|{re.escape(manifest_name)}|{re.escape(state_name)})$")
    safeio.clean_temporaries(out, extra_patterns=[old_temporaries], targets=ours)  # leftovers of a killed build
    state_path = os.path.join(out, state_name)
    state = {"fingerprint": fingerprint, "shards": {}}
    if config.resume and os.path.exists(state_path):
        previous = _read_state(state_path)
        if previous.get("fingerprint") != fingerprint:
            raise BuildError(
                f"--resume: {out} holds a build of other inputs or settings; rerun the command that made "
                "it with --resume, or leave out --resume to start this build over"
            )
        state = previous
    planned = {shard.name for shard in plan}
    for name in os.listdir(out):
        stale = shard_pattern.match(name) and (".tmp" in name or not config.resume or name not in planned)
        if stale or name == manifest_name or (name == state_name and not config.resume):
            os.remove(os.path.join(out, name))  # nothing half-done (or from another build) looks done
    state["shards"] = {n: v for n, v in state["shards"].items() if os.path.exists(os.path.join(out, n))}
    return state, state_path, os.path.join(out, manifest_name)


def build(config, embedder=None, progress=True, embedder_info=None):
    """Build the records ``config`` describes and return the manifest (also written to ``config.out``).

    ``embedder``: optional callable or Keras model, (B, 299, 299, 3) in [-1, 1] -> (B, D), used
    instead of Inception-ResNet-v2 (``embedder_info`` optionally describes it in the manifest).
    Raises :class:`BuildError` or ``embedding.WeightsUnavailableError`` with a one-line message;
    ``safeio.OutputPathError`` for an ``out`` that cannot be a folder, ``safeio.LockedError`` when
    another build writes the same records (the same worker) right now.
    """
    say = print if progress else (lambda *a, **k: None)
    say(f"config: {json.dumps(config.to_json())}")
    out = config.out
    safeio.check_output_dir(out, inputs=config.images, what="records folder (--out)")
    with locks.DirLock(out, "python -m tfrecords_builder", warn=say, name=_file_names(config)[2]):
        return _build_locked(config, embedder, embedder_info, say, progress)


def _build_locked(config, embedder, embedder_info, say, progress):
    try:
        source = sources.make_source(config, warn=lambda line: print(line, file=sys.stderr))
    except sources.SourceError as error:
        raise BuildError(str(error)) from None
    embed, info = _load_embedder(config, embedder, embedder_info)
    plan = plan_shards(source.keys, config, source.shuffled)
    settings = [
        records.SCHEMA_VERSION, config.image_size, config.val_fraction, config.shard_size, config.num_workers, config.keep_gray
    ]
    shards = [(s.name, [source.keys[p] for p in s.positions]) for s in plan]
    same = {k: v for k, v in info.items() if k != "precision" or v == "bfloat16"}  # float32 builds resume as before
    fingerprint = hashlib.sha1(json.dumps([settings, source.description, same, shards]).encode()).hexdigest()
    out = config.out
    state, state_path, manifest_path = _prepare_out_dir(config, out, plan, fingerprint)
    todo = [s for s in plan if s.name not in state["shards"]]
    total = sum(len(s.positions) for s in plan)
    say(
        f"{source.description}: {len(source.keys)} inputs"
        + (f" ({len(source.duplicates)} duplicates left out)" if source.duplicates else "")
        + f"; this worker {total} in {len(plan)} shards"
        + (f", {len(plan) - len(todo)} already done" if len(todo) < len(plan) else "")
    )
    with tqdm(total=sum(len(s.positions) for s in todo), unit="img", desc="building", disable=not progress) as bar:
        builder = _Builder(config, source, embed, state, bar)
        for split in records.SPLITS:
            shards = [s for s in todo if s.split == split]
            if shards:
                _build_split(config, source, shards, builder, state, state_path)

    manifest = _write_manifest(config, source, plan, state, info, embed, manifest_path)
    kept = {split: manifest["splits"][split]["examples"] for split in records.SPLITS}
    gray = sum(1 for s in manifest["skipped"] if s["reason"] == GRAYSCALE)
    say(
        f"wrote {sum(kept.values())} examples (train {kept['train']}, val {kept['val']}) in {len(plan)} shards "
        f"to {out}; skipped {len(manifest['skipped'])}"
        + (f" ({gray} gray photos; --keep-gray keeps them)" if gray else "")
        + f"; manifest {manifest_path}"
    )
    return manifest


def _build_split(config, source, shards, builder, state, state_path):
    """Write ``shards`` (all of one split) in order, recording each finished one in ``state``."""
    positions = [p for s in shards for p in s.positions]
    stream = _prepared_stream(source, positions, config.image_size, config.batch_size, config.keep_gray)
    with contextlib.closing(stream):  # on an error, the preparing threads stop now
        for shard in shards:
            skipped = []
            count = records.write_shard(os.path.join(config.out, shard.name), builder.shard_examples(shard, stream, skipped))
            state["shards"][shard.name] = {"examples": count, "skipped": skipped}
            safeio.write_json(state_path, state)


def _write_manifest(config, source, plan, state, info, embed, manifest_path):
    if "dim" not in state:  # nothing embedded (every input skipped): ask the embedder once
        state["dim"] = int(np.asarray(embed(np.zeros((1, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3), np.float32))).shape[-1])
    splits = {split: {"examples": 0, "shards": []} for split in records.SPLITS}
    skipped = []
    for shard in plan:
        done = state["shards"][shard.name]
        splits[shard.split]["examples"] += done["examples"]
        splits[shard.split]["shards"].append(shard.name)
        skipped += done["skipped"]
    emb = {**info, "dim": state["dim"], "input_size": colors.INCEPTION_SIZE, "input": INCEPTION_INPUT}
    mine = lambda key: worker_of(key, config.num_workers) == config.worker_index  # noqa: E731
    extra = {
        "source": source.description,
        "inputs": len(source.keys),
        "duplicates": [d for d in source.duplicates if mine(d["same_as"])],  # each reported by one worker
        "not_searched": source.problems,
        "gray_photos": "kept" if config.keep_gray else f"skipped (chroma_level < {colors.GRAY_CHROMA} Lab units)",
        "config": config.to_json(),
    }
    if config.num_workers > 1:
        extra["worker"] = {"index": config.worker_index, "count": config.num_workers}
    manifest = records.make_manifest(config.image_size, emb, splits, skipped, **extra)
    safeio.write_json(manifest_path, manifest)
    return manifest


def run(config):
    """The command ``python -m tfrecords_builder``: check ``--out``, :func:`build`; exit status 0
    (a failure is an error of the table in :mod:`koalarization.errors`, with one line)."""
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
