"""Training: ``python -m koalarization.train`` (:mod:`.__main__`).

- :mod:`.config`: :class:`~.config.TrainConfig` and its presets (plain dicts), every option worded once;
- :mod:`.trainer`: :func:`~koalarization.train.trainer.train` and what a run leaves;
- :mod:`.loop`: the custom training loop, one ``tf.function`` step under every distribution strategy;
- :mod:`.rundir`: the run folder's files and how each survives a kill.
"""
