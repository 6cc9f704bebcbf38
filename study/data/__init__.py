"""The data sets: finding, checking and loading the IDX files of Fashion-MNIST and MNIST
(``idx``), and the fixed train/validation split (``loading``). ``python -m study.data``
checks (or fetches) them.

Its public face: ``Dataset``, ``load``, ``locate`` (from the modules above, imported on
first use).
"""

from study.faces import lazy_face

__all__ = ["Dataset", "load", "locate"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "Dataset": "loading",
        "load": "loading",
        "locate": "loading",
    },
)
