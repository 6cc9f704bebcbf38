"""How a study searches: the sampler and pruner (``samplers``), warm starts (``warm``), what a
trial costs and the budgets on it (``costs``), and which trials count and which is best
(``results``).

Its public face: ``make_sampler``, ``make_pruner``, ``best_trial``, ``CostMeter``,
``warm_start`` (from the modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["CostMeter", "best_trial", "make_pruner", "make_sampler", "warm_start"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "make_sampler": "samplers",
        "make_pruner": "samplers",
        "best_trial": "results",
        "CostMeter": "costs",
        "warm_start": "warm",
    },
)
