"""Test-only launcher: ``python tests/app_server.py EMBEDDER.keras APP-ARGS...`` serves the app with a
stand-in embedder (a small saved Keras model) in place of Inception-ResNet-v2, as the CLI library
functions take one (``inception=``). tests/test_app.py runs it in a subprocess."""

import sys

import koalarization

koalarization.quiet_tensorflow()
import keras  # noqa: E402

from koalarization.app import config, page  # noqa: E402

if __name__ == "__main__":
    embedder = keras.saving.load_model(sys.argv[1], compile=False)
    page.serve(config.parse_args(sys.argv[2:]), inception=embedder)
