"""MLflow tracking: one experiment and parent run per study, a nested run per trial (``runs``),
what a run records (``records``), written beside training (``writer``), the model registry
(``registry``), pictures (``pictures``), optuna-dashboard artifacts (``optuna_artifacts``)
and where a trial's time goes (``timing``).

Its public face: ``StudyTracker``, ``TrialRun``, ``RecordWriter``, ``register_best`` (from
the modules above, imported on first use).
"""

from study.faces import lazy_face

__all__ = ["RecordWriter", "StudyTracker", "TrialRun", "register_best"]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "StudyTracker": "runs",
        "TrialRun": "runs",
        "RecordWriter": "writer",
        "register_best": "registry",
    },
)
