"""A web page to colorize photos and films, for people who do not use a terminal.

    python -m koalarization.app --model runs/smoke                 # then open http://127.0.0.1:7860
    python -m koalarization.app --model models/koalarization/1 --host 0.0.0.0 --port 8080

``--model`` is what ``python -m koalarization.colorize`` takes (a run dir, a ``.keras`` file or an
exported SavedModel), loaded as the same :class:`~koalarization.model.colorizer.Colorizer`, and
photos are read as the CLI reads files: a photo gets the CLI's pixels. Drop one or many photos:
each shows gray | colorized with a before/after slider, and downloads as a full-size PNG (several:
also one zip). The video tab colorizes a film as ``python -m koalarization.video`` does, sound kept.

Safe by default: 127.0.0.1 only (``--host``), no public link (``--share``), no analytics, no
internet needed; uploads over ``--max-file-mb`` and photos over ``--max-pixels`` are refused with a
message; one request at a time. Exit status: 0 after Ctrl-C, 2 for a bad command line or model.
See docs/app.md.
"""

import sys

import koalarization
from koalarization.app import config as app_config


def main(argv=None):
    config = app_config.parse_args(argv)
    from koalarization.app import page

    try:
        page.serve(config)
    except Exception as error:  # noqa: BLE001  -- a model, weights or port problem: one line, no traceback
        from koalarization.model import inception

        if not isinstance(error, (ValueError, OSError, inception.WeightsUnavailableError)):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
