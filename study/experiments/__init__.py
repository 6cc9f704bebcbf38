"""Controlled experiments as studies of fixed cells (``cells``): the factors an ablation varies
(``factors``), the plans of ``study.ablate`` and ``study.confirm`` (``ablation``,
``confirmation``) and the statistics over seeds (``stats``).

Its public face: ``Cell``, ``open_experiment``, ``Ablation``, ``Confirmation`` (from the
modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["Ablation", "Cell", "Confirmation", "open_experiment"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "Cell": "cells",
        "open_experiment": "cells",
        "Ablation": "ablation",
        "Confirmation": "confirmation",
    },
)
