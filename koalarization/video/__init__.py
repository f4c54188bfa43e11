"""Colorizing films: ``python -m koalarization.video`` (:mod:`.__main__`).

- :mod:`.films`: frames through the photos' :class:`~koalarization.model.colorizer.Colorizer`, steady
  colour within each shot, chunked output that a killed run resumes from.
"""
