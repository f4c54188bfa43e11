"""Kill a process inside a chosen file write, as ``kill -9`` would (for the kill-safety tests).

    python tests/killpoint.py NAME:N:WHEN -- TRAIN_FLAGS...    # python -m koalarization.train, killed at the point

The N-th rename onto a file named NAME (``best.keras``, ``state.weights.h5.next``, ...) ends the
process with ``os._exit(9)``: with WHEN ``during`` the finished temporary file is first cut to
half its size and the rename never happens (a kill inside the writer); with ``before`` the process
dies just before the rename, the source whole (a folder, say); with ``after`` the process dies
right after the rename (before whatever was to follow). Every writer of the run dir ends in
``os.replace`` (koalarization.safeio), so these points cover all of them.
"""

import os
import sys

KILLED = 9  # the exit status of a process stopped here


def install(spec):
    name, nth, when = spec.split(":")
    real_replace, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == name:
            seen[0] += 1
            if seen[0] == int(nth):
                if when in ("during", "before"):
                    if when == "during":
                        os.truncate(src, os.path.getsize(src) // 2)
                    os._exit(KILLED)
                real_replace(src, dst, *args, **kwargs)
                os._exit(KILLED)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace


if __name__ == "__main__":
    spec, separator, *flags = sys.argv[1:]
    assert separator == "--", "usage: killpoint.py NAME:N:WHEN -- TRAIN_FLAGS..."
    if spec != "none":
        install(spec)
    from koalarization.train.trainer import main

    sys.exit(main(flags))
