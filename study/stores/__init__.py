"""Where a study's state lives and how to reach it: the storage and tracking URLs parsed once
(``locations``), credentials kept out of every record (``secrets``), riding out a server
outage (``outage``, ``resilient``), and the few Optuna internals the harness needs, behind
one adapter (``optuna_internals``).

Its public face: ``StorageURL``, ``TrackingURL``, ``parse_storage``, ``parse_tracking``,
``open_storage``, ``StudyLock``, ``existing_study`` (from the modules above, imported on
first use).
"""

from study.faces import lazy_face

__all__ = [
    "StorageURL",
    "StudyLock",
    "TrackingURL",
    "existing_study",
    "open_storage",
    "parse_storage",
    "parse_tracking",
]
__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "StorageURL": "locations",
        "TrackingURL": "locations",
        "parse_storage": "locations",
        "parse_tracking": "locations",
        "open_storage": "locations",
        "StudyLock": "locations",
        "existing_study": "studies",
    },
)
