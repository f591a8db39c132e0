"""Studies: a Sweep (asam_core.runs.sweep) submitted to the run store as one unit.

``submit`` validates the whole sweep first (nothing is queued when one run is bad), then records the
study and its runs in one transaction (``RunStore.submit_study``): a run already done, running or
queued with the same training identity is reused, not retrained.  The study's state is its runs'
(``counts``, ``state``); ``cancel`` cancels the runs the study queued itself and leaves the ones it
reused from elsewhere alone; ``resume`` puts its failed and cancelled runs back in the queue (they
resume from their checkpoints).  No torch here: listing and cancelling stay light.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import ValidationError

from asam_core.runs import resources
from asam_core.runs.store import STATUSES, RunRecord, RunStore
from asam_core.runs.sweep import Sweep
from asam_core.train.config import RunConfig, format_validation_error


@dataclass(frozen=True)
class Study:
    """A stored study; ``sweep`` is None (``problem`` says why) when its stored sweep no longer validates."""

    id: int
    name: str
    owner: str
    created: float
    run_ids: tuple[int, ...]
    reused: frozenset[int]
    sweep: Sweep | None
    problem: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Study":
        try:
            sweep, problem = Sweep.model_validate_json(row["sweep"]), None
        except ValidationError as err:
            sweep, problem = None, "the stored sweep is no longer valid: " + format_validation_error(err).replace("\n", "; ")
        return cls(row["id"], row["name"], row["owner"], row["created"], tuple(row["run_ids"]),
                   frozenset(row["reused"]), sweep, problem)


def submit(store: RunStore, sweep: Sweep, owner: str) -> Study:
    """Queue ``sweep`` as one study (reusing identical runs); returns it."""
    study_id = store.submit_study(sweep.name, sweep.model_dump_json(), sweep.configs(), owner)
    return get(store, study_id)


def get(store: RunStore, study_id: int) -> Study:
    """The study with ``study_id`` (UnknownRun if none)."""
    return Study.from_row(store.study(study_id))


def all_studies(store: RunStore) -> list[Study]:
    """Every study, newest first."""
    return [Study.from_row(row) for row in reversed(store.studies())]


def runs(store: RunStore, study: Study) -> list[RunRecord]:
    """The study's distinct runs, in the order of its positions."""
    return [store.get(run_id) for run_id in dict.fromkeys(study.run_ids)]


def counts(records: Sequence[RunRecord]) -> dict[str, int]:
    """status -> number of the runs (every status present)."""
    found = dict.fromkeys(STATUSES, 0)
    for run in records:
        found[run.status] += 1
    return found


def state(records: Sequence[RunRecord]) -> str:
    """The study's state from its runs: running, queued, done, or "finished with N failed / cancelled"."""
    n = counts(records)
    if n["running"]:
        return "running"
    if n["queued"]:
        return "queued"
    if n["done"] == len(records):
        return "done"
    return f"finished: {n['done']} done, {n['failed']} failed, {n['cancelled']} cancelled"


def summary(records: Sequence[RunRecord]) -> str:
    """"12 runs: 5 done, 1 running, 6 queued" (statuses with no run left out)."""
    n = counts(records)
    parts = ", ".join(f"{count} {status}" for status, count in n.items() if count)
    return f"{len(records)} runs: {parts}" if records else "no runs"


def cancel(store: RunStore, study: Study) -> list[int]:
    """Cancel the study's queued and running runs that it queued itself; returns their ids."""
    touched = []
    for run in runs(store, study):
        if run.id not in study.reused and run.status in ("queued", "running"):
            store.request_cancel(run.id)
            touched.append(run.id)
    return touched


def resume(store: RunStore, study: Study) -> list[int]:
    """Put the study's failed and cancelled runs back in the queue; returns their ids."""
    touched = []
    for run in runs(store, study):
        if run.status in ("failed", "cancelled") and run.config is not None:
            store.retry(run.id)
            touched.append(run.id)
    return touched


def estimated_seconds(configs: Sequence[RunConfig], finished: Sequence[tuple[RunConfig, float]] = ()) -> float:
    """Training time of ``configs`` one after another on this machine (asam_core.runs.resources)."""
    return sum(resources.estimate(config, finished).seconds for config in configs)


def describe_size(sweep: Sweep, seconds: float) -> str:
    """"30 runs over optimizer, rho, p with 2 seeds, about 28 min of training on cpu, one run after another"
    (``seconds``: ``estimated_seconds`` of its configs)."""
    configs = sweep.configs()
    swept = ", ".join(name for name in sweep.swept_options() if name != "label") or "no option"
    return (f"{len(configs)} runs over {swept} with {len(sweep.seeds)} seed{'s' if len(sweep.seeds) > 1 else ''}, "
            f"about {resources.duration(seconds)} of training on {resources.run_device(configs[0])}, one run after "
            f"another")


def sweep_from_json(text: str, where: str) -> Sweep:
    """Parse a Sweep from JSON text; ValueError with one line per problem, naming ``where``."""
    try:
        return Sweep.model_validate(json.loads(text))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    except ValidationError as err:
        raise ValueError(f"{where}: " + format_validation_error(err).replace("\n", "; ")) from None
