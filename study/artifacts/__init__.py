"""The files a study hands out: checkpoints (weights with the spec that rebuilds them), exported config files, and the encoder loaded from either (``checkpoint``, ``config_file``, ``encoder``)."""
