"""The CIFAR page's launch form, derived from RunConfig, and its URL state.

- ``form_fields``: one widget description per RunConfig field (kind, options, allowed range).
- ``form_values``: a config's values as the form shows them (rho / normalization left at
  "paper default" when they hold the default for the optimizer, so switching optimizer in the
  form keeps the paper's values).
- ``parse_run_ids``: run ids from a URL parameter such as "3,5" (ASCII digits only).
- ``form_from_url`` / ``form_to_url``: the form in the URL as ``cifar_f_<field>`` parameters,
  only those that differ from the chosen preset's values.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence, Union, get_args, get_origin

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from asam_core.train.config import RunConfig, format_validation_error, paper_rho

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
    label: str


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
        flag = f"--{name.replace('_', '-')}"
        help_text = f"{info.description[0].upper()}{info.description[1:]}. Allowed: {allowed}. Field `{name}` (CLI `{flag}`)."
        specs.append(FieldSpec(name, kind, optional, options, allowed, help_text, info.title or name))
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


def parse_run_ids(raw: str | None, known: Sequence[int]) -> tuple[list[int], list[str]]:
    """Ids in a comma-separated ``raw`` that are in ``known`` (in order, no repeats), and the rejected tokens."""
    ids: list[int] = []
    rejected: list[str] = []
    for token in (raw or "").split(","):
        token = token.strip()
        if not token:
            continue
        if token.isascii() and token.isdigit() and int(token) in known:
            if int(token) not in ids:
                ids.append(int(token))
        else:
            rejected.append(token)
    return ids, rejected


URL_PREFIX = "cifar_f_"


def _url_text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def form_from_url(query: Mapping[str, str], base: RunConfig) -> tuple[dict[str, Any], list[str]]:
    """The form values of ``base`` with the URL's ``cifar_f_<field>`` parameters applied, each kept
    only if the config still validates with it; returns (values, one problem line per rejected one)."""
    values, problems = form_values(base), []
    for spec in form_fields():
        raw = query.get(URL_PREFIX + spec.name)
        if raw is None:
            continue
        value = None if raw == "" and spec.optional else raw
        try:
            RunConfig.model_validate({**values, spec.name: value})
        except ValidationError as err:
            problems.append(format_validation_error(err).splitlines()[0])
            continue
        values[spec.name] = value
    return {name: _typed(name, value) for name, value in values.items()}, problems


def _typed(name: str, value: Any) -> Any:
    """A form value as its widget holds it (a URL gives strings; number and select widgets want values)."""
    if not isinstance(value, str):
        return value
    spec = next(s for s in form_fields() if s.name == name)
    if spec.kind == "int":
        return int(value)
    if spec.kind == "float":
        return float(value)
    if spec.kind == "checkbox":
        return value.lower() == "true"
    return value


def form_to_url(values: Mapping[str, Any], base: RunConfig) -> dict[str, str]:
    """The URL parameters of the form values that differ from ``base``'s (the preset's), as text."""
    defaults = form_values(base)
    return {URL_PREFIX + name: _url_text(value) for name, value in values.items()
            if _url_text(value) != _url_text(defaults.get(name))}
