"""Running a study: opening it (``session``), the ask/tell loop under the study lock with
heartbeats and recovery (``scheduler``), one trial's life (``trial``, ``reporter``), a
process's run from start to summary (``loop``), the printed progress (``console``), what a
session leaves behind (``publish``) and ``--workers`` processes (``workers``).

Its public face: ``run_study``, ``open_session``, ``Session``, ``Stop``, ``StopKind`` (from
the modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["Session", "Stop", "StopKind", "open_session", "run_study"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "run_study": "loop",
        "open_session": "session",
        "Session": "session",
        "Stop": "scheduler",
        "StopKind": "scheduler",
    },
)
