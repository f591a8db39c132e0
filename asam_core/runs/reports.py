"""What the "CIFAR runs" page and the command line show, shaped from the store's records.

Pure functions, no Streamlit:

- ``form_fields`` / ``form_values``: one widget description per RunConfig field (kind, options,
  allowed range), and a config's values as the form shows them (rho / normalization left at
  "paper default" when they hold the default for the optimizer, so switching optimizer in the
  form keeps the paper's values).
- ``run_rows``: the runs table.  ``run_name``: a run's name in legends and pickers.
- ``curve_traces``: accuracy and loss per epoch, one colour per run, test solid, train dotted.
- ``trajectory_groups``: runs whose trajectories share a plane (same dataset, model and seed
  give the same initial weights w0 and directions d1, d2), each path starting at w0 = (0, 0).
- ``metrics_csv``: every metric row with its run's settings.
- ``parse_run_ids``: run ids from a URL parameter such as "3,5".
- ``text_table``: rows as aligned text for the command line.
"""
from __future__ import annotations

import csv
import io
import math
import types
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping, Sequence, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo

from asam_core.runs.store import METRIC_FIELDS, RunRecord
from asam_core.train.config import RunConfig, paper_rho

WidgetKind = Literal["select", "checkbox", "int", "float", "text"]
_BOUNDS = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
           (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<"))


@dataclass(frozen=True)
class FieldSpec:
    """How the launch form asks for one RunConfig field."""

    name: str
    kind: WidgetKind
    optional: bool
    options: tuple[Any, ...]
    allowed: str
    help: str


def _allowed(info: FieldInfo, kind: WidgetKind, options: tuple[Any, ...], optional: bool, inf_ok: bool) -> str:
    """The allowed values of a field in words, e.g. "a whole number, >= 1, <= 10000"."""
    parts = [f"one of {', '.join(str(o) for o in options if o is not None)}"] if kind == "select" else []
    if kind == "int":
        parts.append("a whole number")
    for rule in info.metadata:
        parts += [f"{word} {getattr(rule, attr)}" for cls, attr, word in _BOUNDS if isinstance(rule, cls)]
        if isinstance(rule, annotated_types.MaxLen):
            parts.append(f"at most {rule.max_length} characters")
        if isinstance(rule, annotated_types.MinLen):
            parts.append(f"at least {rule.min_length} character")
    if inf_ok:
        parts.append("or inf")
    if optional:
        parts.append("empty for the default")
    return ", ".join(parts)


def form_fields() -> list[FieldSpec]:
    """One FieldSpec per RunConfig field, in declaration order.

    Literal -> select, bool -> checkbox, int -> int, float -> float (text when inf is allowed,
    as for p), str -> text; ``X | None`` is optional (None = the config's default).
    """
    specs = []
    for name, info in RunConfig.model_fields.items():
        annotation, optional = info.annotation, False
        if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
            (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
            optional = True
        options: tuple[Any, ...] = ()
        inf_ok = any(getattr(rule, "allow_inf_nan", False) for rule in info.metadata)
        if get_origin(annotation) is Literal:
            kind: WidgetKind = "select"
            options = ((None,) if optional else ()) + get_args(annotation)
        elif annotation is bool:
            kind = "checkbox"
        elif annotation is int:
            kind = "int"
        elif annotation is float:
            kind = "text" if inf_ok else "float"
        else:
            kind = "text"
        allowed = _allowed(info, kind, options, optional, inf_ok)
        specs.append(FieldSpec(name, kind, optional, options, allowed, f"{info.description}. Allowed: {allowed}."))
    return specs


def form_values(config: RunConfig) -> dict[str, Any]:
    """``config`` as form values: rho / normalization None where they equal the optimizer's default,
    fields shown as text (p) as strings."""
    values = config.model_dump()
    if values["rho"] == paper_rho(config.dataset, config.optimizer):
        values["rho"] = None
    if values["normalization"] == RunConfig(optimizer=config.optimizer).normalization:
        values["normalization"] = None
    for spec in form_fields():
        if spec.kind == "text" and not isinstance(values[spec.name], str):
            values[spec.name] = "inf" if math.isinf(values[spec.name]) else f"{values[spec.name]:g}"
    return values


def run_name(run: RunRecord) -> str:
    """``#3 ASAM rho=0.5 resnet20 · label``: the run in legends and pickers."""
    c = run.config
    sharpness = f" rho={c.rho:g}" if c.optimizer != "sgd" else ""
    return f"#{run.id} {c.optimizer.upper()}{sharpness} {c.model}" + (f" · {c.label}" if c.label else "")


def run_rows(runs: Sequence[RunRecord], best_test_acc: Mapping[int, float]) -> list[dict[str, Any]]:
    """The runs table, newest first: one dict per run (progress in [0, 1], accuracy in %)."""
    rows = []
    for run in sorted(runs, key=lambda r: -r.id):
        best = best_test_acc.get(run.id)
        rows.append({
            "run": run.id,
            "label": run.config.label,
            "status": run.status,
            "progress": run.progress,
            "optimizer": run.config.optimizer.upper(),
            "rho": run.config.rho if run.config.optimizer != "sgd" else None,
            "model": run.config.model,
            "epochs": run.config.epochs,
            "best test acc (%)": None if best is None else 100.0 * best,
            "owner": run.owner,
            "created": datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M"),
            "error": run.error or "",
        })
    return rows


@dataclass(frozen=True)
class CurveTrace:
    """One line of the learning-curve figure."""

    run_id: int
    name: str
    panel: Literal["accuracy", "loss"]
    split: Literal["test", "train"]
    epochs: list[int]
    values: list[float]
    color_index: int
    dash: Literal["solid", "dot"]


def curve_traces(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> list[CurveTrace]:
    """Test (solid) and train (dotted) accuracy in % and loss per epoch for each of ``runs``.

    ``metrics`` are the store's rows (run_id plus METRIC_FIELDS); run i gets colour index i.
    Epochs without evaluation (test values None) are left out of the test lines.
    """
    traces = []
    for color, run in enumerate(runs):
        for split, dash in (("test", "solid"), ("train", "dot")):
            rows = [m for m in metrics if m["run_id"] == run.id and m[f"{split}_acc"] is not None]
            name, epochs = f"{run_name(run)} ({split})", [int(m["epoch"]) for m in rows]
            acc = [100.0 * m[f"{split}_acc"] for m in rows]
            loss = [m[f"{split}_loss"] for m in rows]
            traces.append(CurveTrace(run.id, name, "accuracy", split, epochs, acc, color, dash))
            traces.append(CurveTrace(run.id, name, "loss", split, epochs, loss, color, dash))
    return traces


@dataclass(frozen=True)
class TrajectoryPath:
    """One run's weights in its plane: (0, 0) is w0, then one point per finished epoch."""

    run_id: int
    name: str
    x: list[float]
    y: list[float]
    epochs: list[int]
    color_index: int


@dataclass(frozen=True)
class TrajectoryGroup:
    """Runs sharing one plane: same dataset, model and seed."""

    title: str
    paths: list[TrajectoryPath]


def trajectory_groups(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> list[TrajectoryGroup]:
    """The paths of ``runs`` (colour index = position in ``runs``), grouped by shared plane."""
    groups: dict[tuple[str, str, int], list[TrajectoryPath]] = {}
    for color, run in enumerate(runs):
        rows = [m for m in metrics if m["run_id"] == run.id]
        path = TrajectoryPath(
            run.id, run_name(run),
            [0.0] + [m["traj_x"] for m in rows], [0.0] + [m["traj_y"] for m in rows],
            [0] + [int(m["epoch"]) for m in rows], color,
        )
        groups.setdefault((run.config.dataset, run.config.model, run.config.seed), []).append(path)
    return [
        TrajectoryGroup(f"{model} on {dataset}, seed {seed}", paths)
        for (dataset, model, seed), paths in groups.items()
    ]


CSV_RUN_FIELDS = ("run_id", "label", "owner", "status", "dataset", "model", "optimizer", "rho", "eta", "seed")


def metrics_csv(runs: Sequence[RunRecord], metrics: Sequence[Mapping[str, float]]) -> str:
    """CSV with one line per (run, epoch): CSV_RUN_FIELDS then METRIC_FIELDS."""
    by_id = {run.id: run for run in runs}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_RUN_FIELDS + METRIC_FIELDS)
    for m in metrics:
        run = by_id[m["run_id"]]
        c = run.config
        writer.writerow(
            [run.id, c.label, run.owner, run.status, c.dataset, c.model, c.optimizer, c.rho, c.eta, c.seed]
            + [m[f] for f in METRIC_FIELDS]
        )
    return out.getvalue()


def parse_run_ids(raw: str | None, known: Sequence[int]) -> tuple[list[int], list[str]]:
    """Ids in a comma-separated ``raw`` that are in ``known`` (in order, no repeats), and the rejected tokens."""
    ids: list[int] = []
    rejected: list[str] = []
    for token in (raw or "").split(","):
        token = token.strip()
        if not token:
            continue
        if token.isdigit() and int(token) in known:
            if int(token) not in ids:
                ids.append(int(token))
        else:
            rejected.append(token)
    return ids, rejected


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as aligned plain-text columns (floats to 4 significant digits, None as "-")."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [list(columns)] + [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells)
