"""The builder as an Apache Beam pipeline: the same records as the one-machine runner, on any runner.

    python -m tfrecords_builder --out records/ --images photos/ --inception-weights random \\
        --beam-pipeline-options "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

Only the orchestration differs from :mod:`tfrecords_builder.builder`; the plan (every key's split,
shard and position: :mod:`tfrecords_builder.plan`) and the per-photo work (``prepared_stream``:
decode, gray test, letterbox + Lab; ``ExampleMaker``: embed in batches, serialize) are the same
functions, so both write the same bytes. The driver (this process) lists the sources, plans the
shards, writes one small task file per shard to do (its keys and payloads) into ``OUT/.beam-build/``
and runs ``Create(shard names) | Reshuffle | ParDo(WriteShard)``: the pipeline graph stays small
whatever the number of photos. Each worker loads Inception once (``DoFn.setup``) in the chosen
precision and writes each of its shards whole: under a temporary name, then renamed, after a
``SHARD.done.json`` beside its task has recorded what the shard holds. A bundle retried by the
runner, or a second attempt of the same shard, finds it done or writes the same bytes again.

The driver holds the records folder's lock for the whole run. After a kill (``kill -9`` of the
driver and its workers), the same command with ``--resume`` keeps every shard that is both
present and recorded (in ``build-state.json`` or a ``.done.json`` of this build's fingerprint) and
builds only the rest; the manifest is written last, and ``.beam-build/`` removed with it.

``--out`` and ``--images`` may be URLs (``gs://``, ``s3://``, ``hdfs://``: :mod:`koalarization.storage`,
through ``tf.io.gfile``) that the driver and every worker can reach: the lock is then an advisory
lock object (:mod:`koalarization.locks`), each shard and JSON file an object written under a
temporary name and renamed (a copy then a delete of that object on GCS), the photos found by one
walk of the bucket's prefix (:mod:`koalarization.discovery`) and read whole by the workers.
"""

import json
import os
import sys

from koalarization import beam_options, locks, records, safeio, storage
from tfrecords_builder import builder, plan, sources

beam = beam_options.import_beam()

WORK_DIR = ".beam-build"  # inside --out: the task and done files of a Beam build, removed when it is done


def _task_path(out, name):
    return plan.task_path(os.path.join(out, WORK_DIR), name)


def _done_path(out, name):
    return os.path.join(out, WORK_DIR, f"{name}.done.json")


def _read_done(out, name, fingerprint):
    """What a finished shard holds (``{"examples", "skipped", "dim"}``), or None when it is not finished
    by this build (no done file, another build's, or no shard file)."""
    path = _done_path(out, name)
    if not (storage.exists(path) and storage.exists(os.path.join(out, name))):
        return None
    try:
        done = safeio.read_json(path, "shard record", kind=dict)
    except safeio.DamagedFileError:
        return None  # cut by a kill: the shard is built again
    return done if done.get("fingerprint") == fingerprint else None


class WriteShard(beam.DoFn):
    """Shard name -> the shard written whole (its task file says which photos), Inception loaded once per worker."""

    def __init__(self, config, fingerprint, embedder=None):
        self.config, self.fingerprint, self.embedder = config, fingerprint, embedder

    def setup(self):
        beam_options.start_worker(self)
        self.embed = builder.load_embedder(self.config, self.embedder)  # once per worker process

    def process(self, name):
        out = self.config.out
        if _read_done(out, name, self.fingerprint) is not None:
            yield name  # a retried bundle or a second attempt: the shard is whole already
            return
        task = safeio.read_json(_task_path(out, name), "shard task", kind=dict)
        positions = [int(p) for p in task["positions"]]
        if task.get("paths") is not None:
            reader = _Paths(dict(zip(positions, task["paths"])))
        else:
            reader = sources.TfdsReader(*task["tfds"])
        state, skipped = {}, []
        maker = builder.ExampleMaker(self.config, dict(zip(positions, task["keys"])), self.embed, state)
        stream = builder.prepared_stream(reader, positions, self.config.image_size, self.config.batch_size, self.config.keep_gray)

        def record(count):  # the temporary shard is whole: say what it holds, then it is renamed
            done = {"fingerprint": self.fingerprint, "examples": count, "skipped": skipped, "dim": state.get("dim")}
            safeio.write_json(_done_path(out, name), done)

        try:
            records.write_shard(os.path.join(out, name), maker.shard_examples(positions, stream, skipped), record)
        finally:
            stream.close()
        print(f"wrote {name}", file=sys.stderr)
        yield name


class _Paths:
    """A file source's payloads in a worker: the paths its task carries."""

    def __init__(self, path_of):
        self.path_of = path_of

    def payloads(self, positions):
        return ((int(p), self.path_of[int(p)]) for p in positions)


def build(config, embedder=None, progress=True, embedder_info=None):
    """:func:`tfrecords_builder.builder.build` on Beam (``config.beam_pipeline_options``): the same
    records and manifest. ``embedder``, when given, must be picklable (a module-level function)."""
    options = beam_options.parse(config.beam_pipeline_options)  # a bad string: UsageError before any work
    say = print if progress else (lambda *a, **k: None)
    say(f"config: {json.dumps(config.to_json())}")
    out = config.out
    safeio.check_output_dir(out, inputs=config.images, what="records folder (--out)")
    if embedder is None and config.inception_weights not in ("imagenet", "random") and not os.path.isfile(config.inception_weights):
        raise builder.BuildError(f"{config.inception_weights}: Inception weights file not found")
    with locks.DirLock(out, "python -m tfrecords_builder", warn=say, name=builder.LOCK_NAME):
        return _build_locked(config, options, embedder, embedder_info, say)


def _build_locked(config, options, embedder, embedder_info, say):
    source = builder.open_source(config)
    info = builder.describe_embedder(config, embedder, embedder_info)
    shards, fingerprint = builder.plan_build(config, source, info)
    out = config.out
    state, state_path, manifest_path = builder.prepare_out_dir(config, out, shards, fingerprint)
    work = os.path.join(out, WORK_DIR)
    if not config.resume:
        storage.rmtree(work)
    _collect(out, shards, fingerprint, state)
    todo = [s for s in shards if s.name not in state["shards"]]
    builder.say_plan(say, source, shards, todo)
    if todo:
        storage.makedirs(work)
        safeio.clean_temporaries(work)  # leftovers of a killed driver or worker
        plan.write_tasks(work, todo, source.keys, source.paths, source.tfds)
        say(f"running {len(todo)} shards on Beam's {options['runner']}")
        beam_options.run(options, [s.name for s in todo], WriteShard(config, fingerprint, embedder), "write shards")
        _collect(out, shards, fingerprint, state)
        missing = [s.name for s in shards if s.name not in state["shards"]]
        if missing:
            raise builder.BuildError(f"the Beam pipeline ended without writing {missing[0]} (and {len(missing) - 1} more); run the same command with --resume")
    safeio.write_json(state_path, state)
    manifest = builder.write_manifest(config, source, shards, state, info, lambda batch: builder.load_embedder(config, embedder)(batch), manifest_path)
    storage.rmtree(work)
    builder.say_done(say, manifest, shards, out, manifest_path)
    return manifest


def _collect(out, shards, fingerprint, state):
    """Record in ``state`` every shard a Beam worker finished (its done file), with the embedding's size."""
    for shard in shards:
        if shard.name in state["shards"]:
            continue
        done = _read_done(out, shard.name, fingerprint)
        if done is not None:
            state["shards"][shard.name] = {"examples": done["examples"], "skipped": done["skipped"]}
            if done.get("dim") is not None:
                state.setdefault("dim", done["dim"])
