"""Colorizing films: ``python -m koalarization.video`` (:mod:`.__main__`).

- :mod:`.config`: :class:`~.config.VideoConfig`, every option worded once;
- :mod:`.films`: frames through the photos' :class:`~koalarization.model.colorizer.Colorizer`, steady
  colour within each shot, chunked output that a killed run resumes from;
- :mod:`.stream`: the container side (probe, decode, encode the chunks, mux the final file and its audio).
"""
