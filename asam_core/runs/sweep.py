"""Sweeps: the runs of a study, described once and validated as a whole before anything is queued.

A ``Sweep`` is a base RunConfig (``base``: options), a list of ``variants`` (each a dict of options;
a *list* value in a variant sweeps that option within the variant, e.g. its own rho values), a
``grid`` (option -> values, crossed with every variant) and ``seeds``.  Its runs, in order:

    for each variant, for each point of its own lists, for each grid point (last key fastest),
    for each seed:  RunConfig(base | variant point | grid point | seed)

so the number of runs is  sum_v prod(len(v's lists)) x prod(len(grid values)) x len(seeds).  A bad
value fails with one line that names where it came from: ``grid.rho[2]: must be >= 0 (got -1)``,
``variants[1].p: must be > 1 (got 1)``, ``base.epochs: ...``.  ``figure`` and ``x`` say what the
Studies page draws (asam_core.runs.study_results): curves of test accuracy (or error) against the
option ``x``, one per series (a run's label, else its method), or the correlation of flatness with
the generalization gap (ASAM Table 1 / Figure 2), with the grid's options as the hyper-parameters of
the granulated coefficient Psi.
"""
from __future__ import annotations

import itertools
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from asam_core.train.config import MAX_SEEDS, RunConfig, echo, format_validation_error

MAX_RUNS = 2000
StudyFigure = Literal["curves", "correlation"]
CurveMeasure = Literal["test_acc", "test_error"]


def _points(options: dict[str, Any], where: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Every combination of the list values of ``options`` (other values fixed), each with the
    origin of every option (``where.name`` or ``where.name[i]``)."""
    fixed = {k: v for k, v in options.items() if not isinstance(v, list)}
    swept = {k: v for k, v in options.items() if isinstance(v, list)}
    for name, values in swept.items():
        if not values:
            raise ValueError(f"{where}.{name}: give at least one value")
    combos = []
    for indices in itertools.product(*(range(len(v)) for v in swept.values())):
        point = dict(fixed)
        origin = {k: f"{where}.{k}" for k in fixed}
        for name, i in zip(swept, indices):
            point[name] = swept[name][i]
            origin[name] = f"{where}.{name}[{i}]"
        combos.append((point, origin))
    return combos


class Sweep(BaseModel):
    """A study's runs (module docstring).  ``configs()`` are the validated RunConfigs, in order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., title="Study name", min_length=1, max_length=100)
    description: str = Field("", title="What the study shows", max_length=4000)
    figure: StudyFigure = Field("curves", title="Figure", description="curves against x, or correlation with the gap")
    x: str = Field("rho", title="x axis", description="the RunConfig option on the x axis of the curves")
    y: CurveMeasure = Field("test_acc", title="y axis", description="test accuracy or test error (%)")
    base: dict[str, Any] = Field(default_factory=dict, title="Base options")
    variants: list[dict[str, Any]] = Field(default_factory=lambda: [{}], min_length=1, max_length=100,
                                           title="Variants")
    grid: dict[str, list[Any]] = Field(default_factory=dict, title="Grid")
    seeds: list[int] = Field(default_factory=lambda: [0], title="Seeds")
    _configs: list[RunConfig] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _expand(self) -> "Sweep":
        if not 1 <= len(self.seeds) <= MAX_SEEDS or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: give 1 to {MAX_SEEDS} different seeds (got {echo(self.seeds)})")
        for where, options in [("base", self.base), ("grid", self.grid)] + [
                (f"variants[{i}]", v) for i, v in enumerate(self.variants)]:
            if "seed" in options:
                raise ValueError(f"{where}.seed: give the seeds in seeds, not here")
            for name in options:
                if name not in RunConfig.model_fields:
                    raise ValueError(f"{where}.{name}: is not an option (see RunConfig for the allowed ones)")
        if self.x not in RunConfig.model_fields:
            raise ValueError(f"x: is not an option (see RunConfig for the allowed ones) (got {echo(self.x)})")
        grid_points = _points(dict(self.grid), "grid")
        size = sum(len(_points(v, f"variants[{i}]")) for i, v in enumerate(self.variants)) * len(grid_points) * len(self.seeds)
        if size > MAX_RUNS:
            raise ValueError(f"grid: the study has {size} runs, at most {MAX_RUNS}: give fewer values or seeds")
        base_origin = {k: f"base.{k}" for k in self.base}
        configs = []
        for i, variant in enumerate(self.variants):
            for variant_point, variant_origin in _points(variant, f"variants[{i}]"):
                for grid_point, grid_origin in grid_points:
                    options = {**self.base, **variant_point, **grid_point}
                    origin = {**base_origin, **variant_origin, **grid_origin}
                    for seed in self.seeds:
                        configs.append(_validated({**options, "seed": seed}, {**origin, "seed": "seeds"}))
        self._configs = configs
        return self

    def configs(self) -> list[RunConfig]:
        """The study's runs, in the order of the module docstring."""
        return list(self._configs)

    def swept_options(self) -> list[str]:
        """The options that vary over the study's runs (seed excluded), in RunConfig's order."""
        values: dict[str, set[str]] = {}
        for config in self._configs:
            for name, value in config.model_dump(mode="json").items():
                values.setdefault(name, set()).add(json.dumps(value))
        return [name for name in RunConfig.model_fields if name != "seed" and len(values.get(name, ())) > 1]


def _validated(options: dict[str, Any], origin: dict[str, str]) -> RunConfig:
    """RunConfig(options); a ValueError whose lines name the origin of each bad option."""
    try:
        return RunConfig.model_validate(options)
    except ValidationError as err:
        lines = []
        for line in format_validation_error(err).splitlines():
            name, _, rest = line.partition(":")
            lines.append(f"{origin.get(name, name)}:{rest}")
        raise ValueError("; ".join(lines)) from None
