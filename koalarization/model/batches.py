"""Colorizing a stream of photos in batches: :meth:`koalarization.model.colorizer.Colorizer.colorize_stream`
(``colorize``'s files and ``evaluate --images``), kept apart from the object so that each file stays short.
"""

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

BATCH_PIXELS = 1 << 24  # colorize holds at most about this many input pixels at once (16 MP), or one bigger photo


def colorize_stream(colorizer, items, batch_size=8, batch_pixels=BATCH_PIXELS, finish=None, workers=0, hints=None):
    """``(key, rgb)`` pairs -> ``(key, rgb, result or the exception)`` in input order, in batches
    bounded by ``batch_size`` images and ``batch_pixels`` input pixels (a bigger photo goes alone;
    the first photo goes alone too, so that it is out one network call after the models are ready).

    ``result`` is the colorized uint8 tensor, or ``finish(key, rgb, colorized)`` (e.g. encoding and
    saving it). ``workers > 0``: the recombination and ``finish`` run in that many threads beside
    the networks, which go on with the next batch meanwhile. A TensorFlow error or running out
    of memory is yielded for its photo; any other exception (from ``finish``) is raised.
    ``hints`` (a hints model): ``key -> (photo name, list of (x, y, (r, g, b)))``; a bad hint raises UsageError.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    finish = finish or (lambda key, rgb, colorized: colorized)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="recombine") if workers else None
    pending = deque()  # (key, rgb, future or result) in input order
    limit = 2 * batch_size if pool is not None else 0  # photos in flight beside the networks ...

    def pixels_of(entries):
        return sum(int(rgb.shape[0]) * int(rgb.shape[1]) for _, rgb, _ in entries)

    def done(entry):
        key, rgb, outcome = entry
        if pool is not None and not isinstance(outcome, Exception):
            try:
                outcome = outcome.result()
            except (tf.errors.OpError, MemoryError) as error:
                outcome = error
        return key, rgb, outcome

    def finished(key, ab, rgb):
        return finish(key, rgb, colorizer.recombine(ab, rgb))

    try:
        for batch in _batches(items, batch_size, batch_pixels):
            for key, rgb, ab in _run_batch(colorizer, batch, hints):
                if isinstance(ab, Exception):
                    pending.append((key, rgb, ab))
                elif pool is not None:
                    pending.append((key, rgb, pool.submit(finished, key, ab, rgb)))
                else:
                    try:
                        pending.append((key, rgb, finished(key, ab, rgb)))
                    except (tf.errors.OpError, MemoryError) as error:
                        pending.append((key, rgb, error))
            while pending and (len(pending) > limit or pixels_of(pending) > batch_pixels):  # ... and their pixels
                yield done(pending.popleft())
        while pending:
            yield done(pending.popleft())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

def _batches(items, batch_size, batch_pixels):
    batch, pixels, first = [], 0, True
    for key, rgb in items:
        size = int(rgb.shape[0]) * int(rgb.shape[1])
        if batch and (first or len(batch) >= batch_size or pixels + size > batch_pixels):
            yield batch
            batch, pixels, first = [], 0, False
        batch.append((key, rgb))
        pixels += size
    if batch:
        yield batch


def _run_batch(colorizer, batch, hints=None):
    """A batch -> ``(key, rgb, ab (S, S, 2) or the exception)`` per photo."""
    maps = None
    if hints is not None:  # key -> (name, points)
        named = [hints(key) for key, _ in batch]
        checked = colorizer.check_hints([points for _, points in named], [rgb for _, rgb in batch], [name for name, _ in named])
        maps = [colorizer.hint_map(rgb, points) for (_, rgb), points in zip(batch, checked)]
    try:
        rgbs = [rgb for _, rgb in batch]
        ab = colorizer.predict(rgbs) if maps is None else colorizer.predict(rgbs, maps)  # (B, S, S, 2)
    except (tf.errors.OpError, MemoryError) as error:  # e.g. out of memory on a huge image
        if len(batch) > 1:  # find which one: each alone
            for item in batch:
                yield from _run_batch(colorizer, [item], hints)
            return
        yield batch[0][0], batch[0][1], error
        return
    for i, (key, rgb) in enumerate(batch):
        yield key, rgb, ab[i]
