"""What a study explains about itself: the report (``report``), its plots (``plots``), tables
(``tables``), the tables of its experiments (``experiments``) and the HTML page (``html``).

Its public face: ``write_report``, ``ablation_markdown``, ``confirmation_markdown`` (from
the modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["ablation_markdown", "confirmation_markdown", "write_report"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "write_report": "report",
        "ablation_markdown": "experiments",
        "confirmation_markdown": "experiments",
    },
)
