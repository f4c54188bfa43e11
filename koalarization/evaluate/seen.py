"""Which evaluated photos a run was trained on: the keys of the train split of the records it names.

Apart from :mod:`koalarization.evaluate.scoring` (which imports it) so that the scoring reads on one
subject: a report says per image ``seen_in_training``, or why it cannot tell.
"""

import os
import sys

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf
from tqdm import tqdm

from koalarization import records
from koalarization.model import colorizer as colorizer_module
from koalarization.records.dataset import Records


def trained_on_records(run_config):
    """The records dir a run was trained on, when its config says so and it is still there."""
    config = run_config.get("config") if isinstance(run_config, dict) else None
    path = config.get("records") if isinstance(config, dict) else None
    return path if isinstance(path, str) and os.path.isfile(os.path.join(path, records.MANIFEST_NAME)) else None


# -- inputs: batches of {"key", "height", "width", "l", "ab" (scaled), "embedding" or "rgb"} ------
def training_keys(run_config, evaluated=None):
    """``(base names of the photos a run was trained on, None)``, or ``(None, why they cannot be told)``
    (``why`` is None when the run says nothing of its records). ``evaluated``: ``(records dir, split)``
    when records are evaluated.

    Records rebuilt since the run trained on them (another count of photos, another split) cannot
    say what it saw. The val split of the very records it trained on holds no training photo by
    construction (the builder drops duplicate files, then splits by the key): no need to read the
    train split's keys for that, which at ImageNet's size means reading every record.
    """
    path = trained_on_records(run_config)
    if not path:
        return None, None
    try:
        trained_on = Records(path)
        now = trained_on.facts()
        then = colorizer_module.records_facts(run_config) or None
        if then is not None and then != now:
            changed = records.changed_facts(then, now)
            return None, (
                f"the records this run trained on ({path}) were rebuilt since ({changed} changed): which of the "
                "evaluated images it saw in training cannot be told"
            )
        if evaluated and evaluated[1] == "val" and then is not None and os.path.realpath(evaluated[0]) == os.path.realpath(path):
            return set(), None
        return {os.path.basename(key) for key in read_keys(trained_on, "train")}, None
    except (ValueError, OSError, tf.errors.OpError) as error:
        return None, f"the keys of {path}'s train split could not be read ({error})"


def read_keys(recs, split):
    """The keys of a split's examples: every record is read, only its key parsed (a progress bar on stderr)."""
    features = {"key": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(recs.shards(split)).batch(1024)
    keys = []
    with tqdm(total=recs.num_examples(split), desc=f"reading the {split} keys", unit="key", file=sys.stderr, disable=None) as bar:
        for batch in ds.map(lambda serialized: tf.io.parse_example(serialized, features)["key"]):
            keys += [key.decode("utf-8", "replace") for key in batch.numpy()]
            bar.update(len(keys) - bar.n)
    return keys
