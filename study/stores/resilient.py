"""The Optuna storage and the MLflow client as a worker uses them: every call goes through an
``Outage`` that retries it while its server is away (see ``study.outage``)."""

from __future__ import annotations

from optuna.storages import BaseStorage

from study.stores.optuna_internals import BaseHeartbeat
from study.stores.outage import Outage


def _through_outage(name: str):
    def method(self, *args, **kwargs):
        return self.outage.call(getattr(self.inner, name), *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``{name}`` of the wrapped storage, retried through outages."
    return method


class ResilientStorage(BaseStorage, BaseHeartbeat):
    """An Optuna storage whose every call is retried while the database is unreachable.

    Heartbeat methods are passed on as they are, so Optuna treats it as the RDB storage it
    wraps (heartbeats on); writes that are retried are idempotent in Optuna's RDB storage
    except ``create_new_trial``, which runs under the study lock.
    """

    def __init__(self, inner: BaseStorage, outage: Outage):
        self.inner, self.outage = inner, outage

    create_new_study = _through_outage("create_new_study")
    delete_study = _through_outage("delete_study")
    set_study_user_attr = _through_outage("set_study_user_attr")
    set_study_system_attr = _through_outage("set_study_system_attr")
    get_study_id_from_name = _through_outage("get_study_id_from_name")
    get_study_name_from_id = _through_outage("get_study_name_from_id")
    get_study_directions = _through_outage("get_study_directions")
    get_study_user_attrs = _through_outage("get_study_user_attrs")
    get_study_system_attrs = _through_outage("get_study_system_attrs")
    get_all_studies = _through_outage("get_all_studies")
    create_new_trial = _through_outage("create_new_trial")
    set_trial_param = _through_outage("set_trial_param")
    get_trial_id_from_study_id_trial_number = _through_outage(
        "get_trial_id_from_study_id_trial_number"
    )
    get_trial_number_from_id = _through_outage("get_trial_number_from_id")
    get_trial_param = _through_outage("get_trial_param")
    set_trial_state_values = _through_outage("set_trial_state_values")
    set_trial_intermediate_value = _through_outage("set_trial_intermediate_value")
    set_trial_user_attr = _through_outage("set_trial_user_attr")
    set_trial_system_attr = _through_outage("set_trial_system_attr")
    get_trial = _through_outage("get_trial")
    get_all_trials = _through_outage("get_all_trials")
    get_n_trials = _through_outage("get_n_trials")
    get_best_trial = _through_outage("get_best_trial")
    get_trial_params = _through_outage("get_trial_params")
    get_trial_user_attrs = _through_outage("get_trial_user_attrs")
    get_trial_system_attrs = _through_outage("get_trial_system_attrs")
    check_trial_is_updatable = _through_outage("check_trial_is_updatable")
    record_heartbeat = _through_outage("record_heartbeat")
    _get_stale_trial_ids = _through_outage("_get_stale_trial_ids")

    def remove_session(self) -> None:
        self.inner.remove_session()

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self):
        return self.inner.get_heartbeat_stale_trial_callback()


class ResilientClient:
    """An ``MlflowClient`` whose every call is retried while the tracking server is away, in
    order (the caller waits), so no record is lost or written twice by a retry of a call
    that failed outright."""

    def __init__(self, inner, outage: Outage):
        self._inner, self._outage = inner, outage

    def around(self, other):
        """``other`` (an artifact repository, say) retried through the same outages."""
        return ResilientClient(other, self._outage)

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            return self._outage.call(attr, *args, **kwargs)

        return call
