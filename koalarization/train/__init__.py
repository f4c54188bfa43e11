"""Training: ``python -m koalarization.train`` (:mod:`.__main__`).

- :mod:`.trainer`: the config, :func:`~koalarization.train.trainer.train` and what a run leaves;
- :mod:`.loop`: the custom training loop, one ``tf.function`` step under every distribution strategy;
- :mod:`.rundir`: the run folder's files and how each survives a kill.
"""
