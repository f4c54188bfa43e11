"""One error table for every command: each failure a user can meet is a :class:`KoalarizationError`
whose class says its exit status, and :func:`command` turns any of them into one line on stderr.

======  ==========================  ====================================================================
status  class                       meaning
======  ==========================  ====================================================================
0                                   done
1       ``SomeInputsFailed``        the command ran, but none of its inputs could be done (each named in the log)
2       ``UsageError``              a bad option value or command line, a missing or unusable input
                                    (file, folder, model, weights, hint), an unknown Beam runner
3       ``OutputError``             an output that cannot be written: a file where a folder must go, an
                                    existing output without ``--overwrite``, a full disk, no permission
4       ``InUseError``              a records folder, run dir or output folder in use by another process
5       ``DamagedError``            damaged records, run dir, model or state file: names the file
130     ``KeyboardInterrupt``       Ctrl-C (the same command again resumes where a command can resume)
======  ==========================  ====================================================================

Pure Python, no TensorFlow: every command parses and checks its paths before the slow imports.
docs/commands.md has this table beside every command's options.
"""

import functools
import sys

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_OUTPUT = 3
EXIT_IN_USE = 4
EXIT_DAMAGED = 5
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class KoalarizationError(Exception):
    """The base of every error a command reports as one line; ``exit_status`` is the table's."""

    exit_status = EXIT_USAGE


class SomeInputsFailed(KoalarizationError):
    exit_status = EXIT_PARTIAL


class UsageError(KoalarizationError, ValueError):
    exit_status = EXIT_USAGE


class OutputError(KoalarizationError, OSError):
    exit_status = EXIT_OUTPUT


class InUseError(KoalarizationError):
    exit_status = EXIT_IN_USE


class DamagedError(KoalarizationError, ValueError):
    exit_status = EXIT_DAMAGED


class Interrupted(KoalarizationError):
    """Ctrl-C, with the one line that says what the command left (``str()``: that line)."""

    exit_status = EXIT_INTERRUPTED


EXPECTED = (KoalarizationError, KeyboardInterrupt, FileNotFoundError, ValueError, OSError)
"""What :func:`command` reports as one line. Besides our own classes, the built-in errors the
libraries raise for a user's input keep the table's meaning: ``FileNotFoundError`` and
``ValueError`` (a missing input, a bad value: 2), any other ``OSError`` (a write that failed: a
full disk, no permission: 3)."""


def exit_status(error):
    """The table's status for ``error``: its class's, 130 for Ctrl-C, 3 for a built-in ``OSError``
    other than ``FileNotFoundError``, else :data:`EXIT_USAGE`."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, KoalarizationError):
        return error.exit_status
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        return EXIT_OUTPUT
    return EXIT_USAGE


def one_line(error):
    """``error`` as one line: an ``OSError`` names its file and says what to do."""
    if isinstance(error, OSError) and not isinstance(error, (KoalarizationError, FileNotFoundError)) and error.errno:
        from koalarization import safeio

        return f"{safeio.describe_os_error(error.filename or 'output', error)}; {safeio.what_to_do(error)} and run the same command again"
    return " ".join(str(error).split()) or type(error).__name__


def report(error, stream=None):
    """Print ``error`` as the one line a command gives it, and return its exit status."""
    status = exit_status(error)
    stream = stream or sys.stderr
    if isinstance(error, Interrupted):
        print(f"\n{error}", file=stream)
    elif status == EXIT_INTERRUPTED:
        print("\ninterrupted: run the same command again to resume", file=stream)
    else:
        print(f"error: {one_line(error)}", file=stream)
    return status


def command(function):
    """Decorate a command's ``main``: a :class:`KoalarizationError`, one of the built-in errors of
    :data:`EXPECTED` or Ctrl-C becomes one line on stderr and the table's exit status (no
    traceback); anything else is a bug and keeps its traceback. ``main`` returns its status (0, or
    1 when some inputs failed)."""

    @functools.wraps(function)
    def main(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except EXPECTED as error:
            return report(error)

    return main
