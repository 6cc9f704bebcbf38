"""The files a study hands out: checkpoints (weights with the spec that rebuilds them),
exported config files, and the encoder loaded from either (``checkpoint``, ``config_file``,
``encoder``).

Its public face: ``Encoder``, ``save``, ``load``, ``read_config``, ``write_config`` (from
the modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["Encoder", "load", "read_config", "save", "write_config"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "Encoder": "encoder",
        "save": "checkpoint",
        "load": "checkpoint",
        "read_config": "config_file",
        "write_config": "config_file",
    },
)
