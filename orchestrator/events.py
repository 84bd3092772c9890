"""What the engine tells whoever shows its progress: the engine never prints.

The command layer hands ``run_sweep`` (``orchestrator.engine``) and the analyses
(``orchestrator.sweep_analyses``) an events object; each method is one thing that happened, with
the values needed to show it. These base classes do nothing but log warnings, so a library caller
(a notebook, a test) passes nothing and hears nothing but warnings; the ``gapsweep`` command's
live view and log lines are subclasses (``gapsweep.progress``).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class ProgressEvents:
    """Training a sweep (``schedule.SweepRunner``): the populations as they finish."""

    def start(self, plan, todo: dict[str, int], done: dict[str, int]) -> None:
        """Training begins: per configuration label, seeds to train and seeds already done."""

    def update(self, label: str, finished: int, failed: int) -> None:
        """A population of ``label`` finished (or failed): this run's totals for it so far."""

    def seed_steps(self, done: int, total: int) -> None:
        """Seed-steps trained so far, of all this run will train (about twice a second)."""

    def message(self, text: str) -> None:
        """Something a person should know (a retry, a failure, runs reset to pending)."""
        log.warning(text)

    def stop(self) -> None:
        """Training is over (finished, failed or interrupted)."""


class DataEvents:
    """Fetching CLRS data from the cache, building what is missing (``engine.build_data``)."""

    def data_start(self, requests: list, directory) -> None:
        """These data requests (``workers.data.SplitRequest``) are fetched into ``directory``."""

    def data_progress(self, request, graphs: int) -> None:
        """``graphs`` more graphs of ``request`` are built."""

    def data_done(self, request, fetched) -> None:
        """``request`` is in the cache: ``fetched`` (``workers.data.cache.Fetched``) says
        whether it was built and how long it took."""

    def data_stop(self) -> None:
        """Building is over: every request is in the cache, or an error stopped it."""


class AnalysisEvents:
    """Analyses of a sweep's stored parameters, one worker task per configuration."""

    def analysis_start(self, kind: str, configurations: int, detail: str = "") -> None:
        """``kind`` ('faithfulness', 'landscapes' or 'wide_test') begins for this many configurations."""

    def faithfulness_done(self, population, result, arrays, figure, mlflow_run: str | None) -> None:
        """One configuration's faithfulness is stored (``figure`` written; logged to MLflow run
        ``mlflow_run`` when asked)."""

    def landscapes_done(self, population, result, arrays, files: list, directory,
                        mlflow_run: str | None) -> None:
        """One configuration's landscapes are stored and written (``files`` in ``directory``)."""

    def wide_test_done(self, population, result, arrays) -> None:
        """One configuration's wide-test scores are stored (``result``: ``WideTestResult``)."""

    def analysis_stop(self, kind: str) -> None:
        """``kind`` is over for every configuration."""


class SweepEvents(ProgressEvents, DataEvents, AnalysisEvents):
    """Everything ``run_sweep`` reports: data, the run's start, training, its outcome, analyses."""

    def run_start(self, plan, where: str, store_url: str, tracking_uri: str | None) -> None:
        """The sweep is about to be registered and trained on ``where`` (a Ray address, or 'a
        local Ray'); results go to ``store_url`` and, unless None, MLflow at ``tracking_uri``."""

    def trained(self, outcome, counts: list, tracking_uri: str | None,
                experiment_id: str | None = None) -> None:
        """Training is over: ``outcome`` (``schedule.SweepOutcome``) and the sweep's counts per
        configuration as the store has them now (``ResultsStore.counts``); the MLflow store and
        the sweep's experiment in it (None without tracking)."""

    def analyses_start(self, names: list[str]) -> None:
        """The sweep file's ``analyses:`` begin, after its seeds are recorded."""


class SubmitEvents:
    """Submitting a sweep as a Ray job (``jobs.submit_sweep``): the check job on the head, then
    the sweep's job."""

    def agent_wait(self, error: str) -> None:
        """The head answered that no job agent is available yet (it has just started); waiting."""

    def check_start(self, address: str, job_id: str, timeout: float) -> None:
        """The check job ``job_id`` (``gapsweep version --json``) runs on the head at ``address``;
        it has ``timeout`` seconds to finish."""

    def check_done(self, check) -> None:
        """The head runs gapsweep in this version: ``check`` (``jobs.ClusterCheck``)."""

    def code_version_differs(self, here: str | None, there: str | None, host: str) -> None:
        """The head runs the same gapsweep version from another commit; submitted anyway."""
        log.warning(f"the cluster ({host}) runs gapsweep code {there or 'unknown'}, this "
                    f"checkout {here or 'unknown'}; submitted anyway")

    def submitting(self, sweep_name: str) -> None:
        """The check passed; the sweep's own job is being submitted."""
