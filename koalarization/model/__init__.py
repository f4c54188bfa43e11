"""The colorizer itself: the paper's network, its Inception-ResNet-v2 embedder and the method.

- :mod:`.network`: the encoder-fusion-decoder network, layer for layer the paper's table;
- :mod:`.inception`: the Inception-ResNet-v2 feature extractor and where its weights come from;
- :mod:`.method`: the steps around the networks (letterbox, un-letterbox, upsample, recombine);
- :mod:`.decode`: image bytes -> pixels in TensorFlow ops, the SavedModel's decoder;
- :mod:`.colorizer`: the :class:`~koalarization.model.colorizer.Colorizer`, the one object behind
  every door (colorize, video, evaluate, export, demo, notebooks).

Importing the package is free; each module imports TensorFlow/Keras itself.
"""
