"""Executors that carry a workflow's run settings to every run of its assets.

A run launched from the UI's asset graph or asset pages is a run of Dagster's implicit
``__ASSET_JOB`` (the UI prefers it over the workflow's job, except on the job's own page), so
the workflow job's executor and tags would be lost.  The code location's default executor is
therefore :func:`dispatching_executor`: when every selected asset belongs to one workflow, the
run gets that workflow's executor (``in_process`` / ``multiprocess`` with its / ``celery``,
``max_concurrent``) and its run tags (``admf/workflow``, ``dagster/max_runtime``, ...).  Phase
timeouts, the total time limit and pools are enforced per asset, so they hold in any job.

Every run these executors start also records which process runs it (``recovery.process_tags``),
so a run whose process was killed is marked failed instead of staying STARTED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import dagster as dg
from dagster._core.definitions.executor_definition import (
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
)
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.executor.base import Executor

from admf_assets import recovery, runtime

__all__ = ["RunSettings", "admf_executor", "dispatching_executor"]


@dataclass(frozen=True)
class RunSettings:
    """What a workflow's runs are launched with."""

    executor: str | None = None  #: in_process | multiprocess | celery (None: ADMF_EXECUTOR / in_process)
    max_concurrent: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return runtime.executor_kind(self.executor)


class _RecordingExecutor(Executor):
    """Runs ``inner``; first adds the run tags the run lacks and the process tags."""

    def __init__(self, inner: Executor, tags: Mapping[str, str]):
        self._inner = inner
        self._tags = dict(tags)

    def __getattr__(self, name: str):
        # what an executor's own loop asks of it (the Celery loop: app_args(), broker, ...)
        inner = self.__dict__.get("_inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        run = plan_context.dagster_run
        missing = {k: v for k, v in self._tags.items() if k not in run.tags}
        plan_context.instance.add_run_tags(run.run_id, {**missing, **recovery.process_tags()})
        yield from self._inner.execute(plan_context, execution_plan)


_RETRIES = {"retries": {"enabled": {}}}


def _inner(settings: RunSettings, job) -> Executor:
    if settings.kind == "celery" and isinstance(job, ReconstructableJob):
        from admf_assets import distributed

        return distributed.executor_instance()
    if settings.kind == "multiprocess" and isinstance(job, ReconstructableJob):
        from admf_assets.workers import PRELOAD

        return _core_multiprocess_executor_creation({
            **_RETRIES, "max_concurrent": runtime.max_concurrent(settings.max_concurrent),
            "start_method": {"forkserver": {"preload_modules": PRELOAD}},
        })
    return _core_in_process_executor_creation(_RETRIES)


def admf_executor(settings: RunSettings) -> dg.ExecutorDefinition:
    """The executor of one workflow's job (named like Dagster's: ``in_process`` or
    ``multiprocess_forkserver``)."""

    @dg.executor(name=runtime.executor(settings.executor, settings.max_concurrent).name)
    def _executor(init_context) -> Executor:
        return _RecordingExecutor(_inner(settings, init_context.job), settings.tags)

    return _executor


def dispatching_executor(default: RunSettings, by_group: Mapping[str, RunSettings]) -> dg.ExecutorDefinition:
    """The code location's default executor: the settings of the workflow (asset group) that
    all selected assets belong to, else ``default``."""

    @dg.executor(name="admf_default")
    def _executor(init_context) -> Executor:
        settings = _settings_for(init_context.job, default, by_group)
        return _RecordingExecutor(_inner(settings, init_context.job), settings.tags)

    return _executor


def _settings_for(job, default: RunSettings, by_group: Mapping[str, RunSettings]) -> RunSettings:
    try:
        layer = job.get_definition().asset_layer
        groups = {layer.get(k).group_name for k in layer.selected_asset_keys}
    except Exception:  # a job without assets
        return default
    if len(groups) == 1:
        return by_group.get(next(iter(groups)), default)
    return default
