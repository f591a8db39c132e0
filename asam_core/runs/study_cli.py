"""``python -m asam_core.runs study <submit|list|show|cancel|resume|export>``: studies on the command line.

``study submit FILE.json`` (a Sweep, asam_core.runs.sweep) or ``--preset NAME``
(asam_core.runs.study_presets) validates every run, prints the study's size and estimated training
time, checks every run fits this machine, then queues it as one study (``--dry-run``: stop after the
size).  ``--seeds`` and ``--data-dir`` override the sweep's.  ``show`` prints the study's state, its
runs and what it shows so far (each curve's best x with its interval, or the Table 1 tau and Psi);
``export`` writes one CSV row per position.  Errors as in asam_core.runs.cli: one line, exit 2 for bad
input, 1 for a store fault.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from asam_core.runs import studies, study_results
from asam_core.runs.cli import (
    EXIT_OK, UsageError, _default_owner, _existing_store, _store_parser, check_output, estimates_that_fit, write_output,
)
from asam_core.runs.reports import text_table
from asam_core.runs.store import RunStore, UnknownRun, this_host
from asam_core.runs.study_presets import STUDY_PRESETS, find_study_preset
from asam_core.runs.sweep import Sweep
from asam_core.train.config import echo


def study_id(text: str) -> int:
    """argparse type of a study id: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a study id is a whole number from 1 to {2**63 - 1} (got {text[:40]!r})")
    return value


def _sweep_from_args(args: argparse.Namespace) -> Sweep:
    if args.preset is not None:
        try:
            sweep = STUDY_PRESETS[find_study_preset(args.preset)]
        except KeyError as err:
            raise UsageError(err.args[0]) from None
    else:
        try:
            text = args.file.read_bytes().decode("utf-8")
        except OSError as err:
            raise UsageError(f"cannot read {args.file}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise UsageError(f"{args.file} is not UTF-8 text (byte {err.start}): save it as UTF-8 JSON") from None
        try:
            sweep = studies.sweep_from_json(text, str(args.file))
        except ValueError as err:
            raise UsageError(str(err)) from None
    changes = {}
    if args.seeds is not None:
        try:
            changes["seeds"] = [int(part) for part in args.seeds.split(",")]
        except ValueError:
            raise UsageError(f"--seeds {echo(args.seeds)}: give whole numbers such as 0,1,2") from None
    if args.data_dir is not None:
        changes["base"] = {**sweep.base, "data_dir": args.data_dir}
    if not changes:
        return sweep
    try:
        return studies.sweep_from_json(sweep.model_copy(update=changes).model_dump_json(), "the study")
    except ValueError as err:
        raise UsageError(str(err)) from None


def _load(store: RunStore, study: int) -> studies.Study:
    try:
        return studies.get(store, study)
    except UnknownRun as err:
        raise UsageError(err.args[0]) from None


def _submit(args: argparse.Namespace) -> int:
    sweep = _sweep_from_args(args)
    store = RunStore(args.root)
    estimates = estimates_that_fit(store, sweep.configs())
    print(f"{sweep.name}: {studies.describe_size(sweep, sum(e.seconds for e in estimates))}")
    if args.dry_run:
        print("dry run: nothing was queued")
        return EXIT_OK
    study = studies.submit(store, sweep, args.owner)
    new = len(set(study.run_ids) - study.reused)
    print(f"queued study {study.id}: {new} new run(s), {len(study.reused)} reused from earlier runs with the same "
          f"training settings")
    if not store.live_workers(this_host()):
        print(f"no worker is running; start one with: python -m asam_core.runs worker --root {store.root}")
    return EXIT_OK


LIST_COLUMNS = ("study", "name", "state", "runs", "owner")


def _list(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    rows = []
    for study in studies.all_studies(store):
        records = studies.runs(store, study)
        rows.append({"study": study.id, "name": study.name, "state": studies.state(records),
                     "runs": studies.summary(records), "owner": study.owner})
    print(text_table(rows, LIST_COLUMNS))
    return EXIT_OK


def _number(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def _show(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    study = _load(store, args.study_id)
    records = studies.runs(store, study)
    print(f"study {study.id}: {study.name} ({studies.state(records)}; {studies.summary(records)}), owner {study.owner}")
    if study.sweep is None:
        print(f"error: {study.problem}")
        return EXIT_OK
    metrics = store.metrics([run.id for run in records])
    rows = study_results.study_rows(study.sweep, study.run_ids, records, metrics)
    print(text_table(rows, list(rows[0])))
    if study.sweep.figure == "curves":
        curves = study_results.curves(study.sweep, records, metrics)
        print(text_table([{"series": c.series, study.sweep.x: f"{p.x:g}", study.sweep.y: p.mean,
                           "95% ±": p.half, "runs": len(p.run_ids)} for c in curves for p in c.points],
                         ("series", study.sweep.x, study.sweep.y, "95% ±", "runs")))
        if study_results.names_best(study.sweep):
            for curve in curves:
                best = curve.best(study.sweep.y == "test_acc")
                half = "" if best.half is None else f" ± {best.half:.2f}"
                print(f"{curve.series}: best {study.sweep.x} = {best.x:g}, {study.sweep.y} {best.mean:.2f}{half}")
    else:
        result = study_results.correlation(study.sweep, records, metrics)
        print(text_table([{"measure": title, "n": len(result.points[m]), "tau": _number(result.tau[m]),
                           "Psi": _number(result.psi[m])} for m, title in study_results.CORRELATION_MEASURES.items()],
                         ("measure", "n", "tau", "Psi")))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    study = _load(store, args.study_id)
    touched = studies.cancel(store, study)
    print(f"study {study.id}: cancel requested for {len(touched)} run(s)"
          + (f" ({len(study.reused)} reused run(s) left alone)" if study.reused else ""))
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    study = _load(store, args.study_id)
    touched = studies.resume(store, study)
    print(f"study {study.id}: {len(touched)} failed or cancelled run(s) queued again")
    if touched and not store.live_workers(this_host()):
        print(f"no worker is running; start one with: python -m asam_core.runs worker --root {store.root}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    check_output(args.out)
    store = _existing_store(args)
    study = _load(store, args.study_id)
    if study.sweep is None:
        raise UsageError(f"study {study.id}: {study.problem}")
    records = studies.runs(store, study)
    return write_output(args.out, study_results.study_csv(study_results.study_rows(
        study.sweep, study.run_ids, records, store.metrics([run.id for run in records]))))


def add_study_command(subparsers: argparse._SubParsersAction) -> None:
    """``study`` with its own commands: submit, list, show, cancel, resume, export."""
    study = subparsers.add_parser("study", help="studies: sweeps of runs submitted, followed and exported as one",
                                  description=__doc__.splitlines()[0])
    commands = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")

    parser = _store_parser(commands, "submit", "validate a sweep, show its size and queue it as one study")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, metavar="FILE.json", help="a Sweep as JSON")
    source.add_argument("--preset", metavar="NAME", help="; ".join(f"'{name}'" for name in STUDY_PRESETS))
    parser.add_argument("--seeds", metavar="S[,S]", help="replace the sweep's seeds, e.g. 0,1,2")
    parser.add_argument("--data-dir", metavar="DIR", help="folder of the CIFAR archive for every run")
    parser.add_argument("--owner", default=_default_owner(), help="who queued the study (default: your user name)")
    parser.add_argument("--dry-run", action="store_true", help="show the size and estimate, queue nothing")
    parser.set_defaults(handler=_submit)

    parser = _store_parser(commands, "list", "list the studies, newest first")
    parser.set_defaults(handler=_list)
    for name, help_text, handler in (
            ("show", "show a study: state, runs, and what it shows so far", _show),
            ("cancel", "cancel the runs a study queued (reused runs are left alone)", _cancel),
            ("resume", "put a study's failed and cancelled runs back in the queue", _resume),
            ("export", "write a study's runs and values as CSV", _export)):
        parser = _store_parser(commands, name, help_text)
        parser.add_argument("study_id", type=study_id, metavar="STUDY_ID")
        if name == "export":
            parser.add_argument("--out", type=Path, metavar="FILE.csv", help="output file (default: standard output)")
        parser.set_defaults(handler=handler)
