"""``--beam-pipeline-options``: TFDS's convention (``tfds build --beam_pipeline_options``) for
choosing an Apache Beam runner and its settings, shared by the builder and colorize.

    --beam-pipeline-options "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
    --beam-pipeline-options "runner=DataflowRunner,project=P,region=R,temp_location=gs://B/tmp"

Comma-separated ``key=value`` Beam pipeline options, each passed to Beam as ``--key=value``. Pure
Python (no Beam, no TensorFlow): a bad string is refused while the command line is parsed, in
one line with exit status 2 (:class:`koalarization.errors.UsageError`).
"""

import os

from koalarization import errors
from koalarization.errors import UsageError

HELP = (
    "run on Apache Beam: comma-separated Beam pipeline options, as tfds build --beam_pipeline_options takes them, "
    "e.g. 'runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing' (one machine, 2 processes) "
    "or 'runner=DataflowRunner,project=P,region=R,temp_location=gs://B/tmp' (needs apache-beam[gcp]); "
    "without it, the work runs in this process"
)
RUNNERS = {  # what --beam-pipeline-options accepts as runner=, and the package each needs
    "DirectRunner": "apache-beam",
    "DataflowRunner": "apache-beam[gcp]",
    "FlinkRunner": "apache-beam (and a Flink cluster or Docker)",
    "SparkRunner": "apache-beam (and a Spark cluster or Docker)",
    "PortableRunner": "apache-beam (and a job server)",
}
DEFAULT_RUNNER = "DirectRunner"


def parse(text):
    """``"runner=X,k=v"`` -> ``{"runner": "X", "k": "v"}``; :class:`UsageError` for a malformed string,
    an unknown runner or the Prism runner (it downloads its binary, which an offline machine cannot)."""
    said = f"--beam-pipeline-options {text!r}"
    options = {}
    for item in (part.strip() for part in str(text).split(",")):
        key, equals, value = item.partition("=")
        key = key.strip().removeprefix("--")
        if not item or not equals or not key or not value.strip() or " " in key:
            raise UsageError(f"{said}: {item!r} is not key=value; write comma-separated Beam options, e.g. 'runner=DirectRunner,direct_num_workers=2'")
        if key in options:
            raise UsageError(f"{said}: {key} is given twice")
        options[key] = value.strip()
    runner = options.setdefault("runner", DEFAULT_RUNNER)
    aliases = {name.lower(): name for name in RUNNERS} | {name.lower().removesuffix("runner"): name for name in RUNNERS}
    if runner.lower() in ("prismrunner", "prism"):
        raise UsageError(
            f"{said}: the Prism runner downloads its binary on first use, which is not done here; "
            "use runner=DirectRunner (direct_num_workers=N,direct_running_mode=multi_processing for N processes)"
        )
    if runner.lower() not in aliases:
        raise UsageError(f"{said}: unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    options["runner"] = aliases[runner.lower()]
    return options


def worker_threads(options):
    """TensorFlow threads for each worker process: the machine's cores shared out when the
    DirectRunner runs ``direct_num_workers`` processes on this machine (each would otherwise size
    its thread pools for every core, and N processes compete for them); None (TensorFlow's own
    choice) for every other runner, whose workers are machines or containers of their own."""
    if options.get("runner") != "DirectRunner" or options.get("direct_running_mode") != "multi_processing":
        return None
    try:
        processes = max(1, int(options.get("direct_num_workers", 1)))
    except ValueError:
        return None
    return max(1, (os.cpu_count() or 1) // processes)


def start_worker(dofn):
    """A DoFn's ``setup()``, before it loads a model: TensorFlow quiet, and its op thread pools at the
    share :func:`run` gave the DoFn (``dofn.threads``, from :func:`worker_threads`), before its first op."""
    from koalarization import quiet_tensorflow

    quiet_tensorflow()
    threads = getattr(dofn, "threads", None)
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def flags(options):
    """The Beam command-line flags of parsed ``options`` (``["--runner=DirectRunner", ...]``)."""
    return [f"--{key}={value}" for key, value in options.items()]


class PipelineFailed(errors.KoalarizationError):
    """A Beam pipeline that failed (a worker's error); the finished work is kept."""

    exit_status = errors.EXIT_PARTIAL


def import_beam():
    """``apache_beam``, imported without the warning it logs on the root logger about GCP libraries
    that a DirectRunner never needs."""
    import logging

    logging.disable(logging.WARNING)
    try:
        import apache_beam
    finally:
        logging.disable(logging.NOTSET)
    return apache_beam


def make_runner(options):
    """The Beam runner that parsed ``options`` name (:func:`parse`). The DirectRunner is Beam's
    FnApiRunner here, as DirectRunner runs a batch pipeline, without first trying the Prism runner (which
    downloads its binary on first use)."""
    name = options["runner"]
    if name != "DirectRunner":
        try:
            if name == "DataflowRunner":
                from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner  # noqa: F401  (needs apache-beam[gcp])
        except ImportError as error:
            raise PipelineFailed(f"runner=DataflowRunner needs pip install 'apache-beam[gcp]' ({error})") from None
        return name
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(PipelineOptions(flags(options)).get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def run(options, names, dofn, what, retry="run the same command again with --resume"):
    """Run ``Create(names) | Reshuffle | ParDo(dofn)`` on the runner ``options`` say; a failed pipeline
    is a :class:`PipelineFailed` with its last line (the finished work is kept)."""
    import logging

    beam = import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    options = {"default_sdk_harness_log_level": "WARNING", **options}  # the workers' INFO lines are Beam's own
    runner = make_runner(options)
    dofn.threads = worker_threads(options)  # its setup() calls start_worker(self) before loading a model
    try:
        with beam.Pipeline(runner=runner, options=PipelineOptions(flags(options))) as pipeline:
            _ = pipeline | "names" >> beam.Create(list(names)) | beam.Reshuffle() | what >> beam.ParDo(dofn)
    except (PipelineFailed, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001  -- a worker's error comes back wrapped in the runner's
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else type(error).__name__)
        reason = reason.split("Error: ", 1)[-1].split(" [while running")[0]  # the worker's own message
        raise PipelineFailed(f"the Beam pipeline failed: {reason[:400]}; the finished work is kept: {retry}") from None
