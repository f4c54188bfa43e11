"""Colorize an archive on Apache Beam: ``python -m koalarization.colorize IN -o OUT --model M --beam-pipeline-options ...``.

    python -m koalarization.colorize scans/ -o colorized/ --model runs/smoke \\
        --beam-pipeline-options "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

The same work as the local command (:func:`koalarization.colorize.files.colorize_files`), split
in chunks: the driver (this process) plans every output from the whole input set
(``files.plan_work``: the same names; existing outputs kept unless ``--overwrite``), writes one
small task file per chunk into ``OUT/.beam-colorize/`` and runs ``Create(chunks) | Reshuffle |
ParDo(ColorizeChunk)``. Each worker loads the one :class:`~koalarization.model.colorizer.Colorizer`
once (``DoFn.setup``) and runs ``files.colorize_jobs`` on its chunks: every output is written under
a temporary name and renamed, so a retried bundle writes the same file again. Broken inputs are
named in the log and, with every output, in ``OUT/colorize-summary.json``. ``IN`` and ``OUT`` may be
URLs that every worker reaches (``gs://...``: :mod:`koalarization.storage`); ``--model`` is local to each.
"""

import os
import sys

from koalarization import beam_options, safeio, storage
from koalarization.colorize import files
from koalarization.constants import COLORIZE_SUMMARY_FILE

beam = beam_options.import_beam()

WORK_DIR = ".beam-colorize"  # inside OUT: the chunks' task and done files, removed when the run is done
SUMMARY_FILE = COLORIZE_SUMMARY_FILE
CHUNK = 16  # photos per Beam element: a few network batches, small enough to spread over the workers


class ColorizeChunk(beam.DoFn):
    """Chunk name -> its photos colorized into OUT, the Colorizer loaded once per worker."""

    def __init__(self, config, inception_factory=None):
        self.config, self.inception_factory = config, inception_factory

    def setup(self):
        beam_options.start_worker(self)
        inception = self.inception_factory() if self.inception_factory is not None else None
        self.colorizer = files.load_colorizer(self.config, inception, log=_stderr)

    def process(self, name):
        work = os.path.join(self.config.out_dir, WORK_DIR)
        done = os.path.join(work, f"{name}.done.json")
        if not storage.exists(done):  # else: a retried bundle, whose outputs are written already
            task = safeio.read_json(os.path.join(work, f"{name}.task.json"), "colorize task", kind=dict)
            jobs = [tuple(job) for job in task["jobs"]]
            part = files.Summary()
            files.colorize_jobs(self.config, jobs, lambda: self.colorizer, part, {storage.real(p) for p, _ in jobs}, _stderr)
            safeio.write_json(done, {"colorized": part.colorized, "failed": [list(f) for f in part.failed]})
        yield name


def _stderr(line):
    print(line, file=sys.stderr)


def colorize(config, inception_factory=None, log=print):
    """:func:`files.colorize_files` on Beam (``config.beam_pipeline_options``); returns the :class:`files.Summary`.

    ``inception_factory``: a picklable function that returns the Keras embedder to load the model
    with, in each worker (tests pass a tiny one); default: the Inception the model records."""
    options = beam_options.parse(config.beam_pipeline_options)
    summary, todo, _ = files.plan_work(config, log)
    work = os.path.join(config.out_dir, WORK_DIR)
    if todo:
        storage.rmtree(work)  # another run's chunks: this plan is made again from what is on disk
        storage.makedirs(work)
        names = []
        for index, start in enumerate(range(0, len(todo), CHUNK)):
            names.append(f"chunk-{index:05d}")
            safeio.write_json(os.path.join(work, f"{names[-1]}.task.json"), {"jobs": [list(job) for job in todo[start : start + CHUNK]]})
        log(f"colorizing {len(todo)} image(s) in {len(names)} chunks on Beam's {options['runner']}")
        beam_options.run(options, names, ColorizeChunk(config, inception_factory), "colorize", retry="run the same command again (finished outputs are kept)")
        for name in names:
            part = safeio.read_json(os.path.join(work, f"{name}.done.json"), "colorize chunk", kind=dict)
            summary.colorized += part["colorized"]
            summary.failed += [tuple(f) for f in part["failed"]]
            for path, reason in part["failed"]:
                log(f"skipped {path}: {reason}")
    storage.makedirs(config.out_dir)
    safeio.write_json(os.path.join(config.out_dir, SUMMARY_FILE), {
        "colorized": summary.colorized, "kept": summary.existing,
        "failed": [{"path": path, "reason": reason} for path, reason in summary.failed],
    })  # fmt: skip
    storage.rmtree(work)
    log(files._summary_line(summary, config.out_dir))
    return summary
