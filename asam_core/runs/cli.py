"""Command line: ``python -m asam_core.runs <command> ...``.

``run`` trains in the foreground: one config from ``--config FILE.json`` (an object, or a list
of objects), a ``--preset NAME`` (its SGD / SAM / ASAM triple, ``--only`` to pick), or flags
alone; ``--<option> VALUE`` flags override any of them (every RunConfig field has one).  Each
run writes to its folder: config.json, metrics.jsonl (one line per epoch, upserted),
steps.jsonl (training loss every log_every_steps steps, appended: after a resume the re-run
epoch's steps appear again), checkpoint.pt, result.json.  Ctrl-C stops a run after the
current step; ``--resume`` continues it from its last epoch.

``submit`` (same config sources as ``run``; estimates memory and time first and refuses a run
that cannot fit), ``list``, ``show``, ``cancel``, ``retry`` (``--fresh``), ``export`` (CSV),
``gc``, ``settings`` and ``worker`` work on the run store (asam_core.runs.store; ``--root DIR``,
default $ASAM_LAB_RUNS_DIR or ./runs): ``submit`` queues, a ``worker`` process trains in the
background.  The commands that only read or edit the store import no torch.

Errors: bad input is one line on stderr and exit code 2; a store fault (corrupt database,
read-only folder, full disk) one line and exit code 1.  Never a traceback for either.

Each command is a ``add_<name>_command(subparsers)`` function that registers its parser and
sets ``handler``; ``add_config_options`` / ``configs_from_args`` are shared by commands that
take a run config.
"""
from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import math
import os
import signal
import sys
import textwrap
import typing
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

from pydantic import ValidationError

from asam_core.runs import reports
from asam_core.runs.store import (
    DEFAULT_SETTINGS, ROOT_ENV, STATUSES, RunRecord, RunStore, StoreError, UnknownRun, default_root, this_host,
)
from asam_core.train.checkpoint import CHECKPOINT_NAME
from asam_core.train.config import (
    PRESET_DESCRIPTIONS, PRESET_MEASURED, PRESETS, RunConfig, echo, find_preset, format_validation_error,
    with_seeds,
)
from asam_core.train.metrics import METRIC_FIELDS, EpochMetrics
from asam_core.train.progress import ProgressBar

if TYPE_CHECKING:
    from asam_core.train.loop import RunResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_HANG_AFTER_S = 7 * 24 * 3600.0
MAX_POLL_S = 5.0
MAX_RUN_ID = 2**63 - 1
SLOTS_DEFAULT = 1
MAX_RESOURCE_PER_RUN = 1024
RAY_MISSING = "the Ray extra is not installed (pip install -r requirements-ray.txt)"


class UsageError(Exception):
    """Bad command-line input; the message is shown as is."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line ("error: ... (see --help)") and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def run_id(text: str) -> int:
    """argparse type of a run id: a whole number in [1, 2**63 - 1]."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_RUN_ID:
        raise argparse.ArgumentTypeError(f"a run id is a whole number from 1 to {MAX_RUN_ID} (got {text[:40]!r})")
    return value


_DEFAULT_TEXT = {"rho": "the paper's for the dataset and optimizer", "normalization": "none for sam, element for asam",
                 "m": "the whole batch", "subset_per_class": "all images"}


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a bool or (Optional) Literal annotation; [] for other types."""
    if annotation is bool:
        return ["true", "false"]
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return [str(a) for a in typing.get_args(arg)]
    return []


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config / --preset / --only and one --<option> flag per RunConfig field."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, metavar="FILE.json", help="a RunConfig JSON object (or a list of them)")
    source.add_argument("--preset", metavar="NAME",
                        help="; ".join(f"'{name}'" for name in PRESETS).replace("%", "%%"))
    parser.add_argument("--only", metavar="OPT[,OPT]", help="keep only these optimizers of a preset or list (sgd,sam,asam)")
    parser.add_argument("--seeds", metavar="S[,S]", help="repeat every run once per seed, e.g. 0,1,2 (the page and "
                        "`list` group runs that differ only in seed: mean ± 95%% interval)")
    options = parser.add_argument_group("run options (override --config / --preset)")
    for name, field in RunConfig.model_fields.items():
        default = _DEFAULT_TEXT.get(name, field.default)
        options.add_argument(f"--{name.replace('_', '-')}", dest=f"opt_{name}",
                             metavar="|".join(_choices(field.annotation)) or name.upper(),
                             help=f"{field.description} (default: {default})".replace("%", "%%"))


def _base_options(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.preset is not None:
        try:
            return [config.options() for config in PRESETS[find_preset(args.preset)]]
        except KeyError as err:
            raise UsageError(err.args[0]) from None
    if args.config is not None:
        try:
            loaded = json.loads(args.config.read_bytes().decode("utf-8"))
        except OSError as err:
            raise UsageError(f"cannot read {args.config}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise UsageError(f"{args.config} is not UTF-8 text (byte {err.start}): save it as UTF-8 JSON") from None
        except json.JSONDecodeError as err:
            raise UsageError(f"{args.config} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
        loaded = loaded if isinstance(loaded, list) else [loaded]
        if not loaded:
            raise UsageError(f"{args.config} holds an empty list: give at least one run config")
        if not all(isinstance(item, dict) for item in loaded):
            raise UsageError(f"{args.config} must hold a JSON object or a list of objects")
        return loaded
    return [{}]


def _validated(options_list: list[dict[str, Any]], args: argparse.Namespace) -> list[RunConfig]:
    overrides = {name: getattr(args, f"opt_{name}") for name in RunConfig.model_fields
                 if getattr(args, f"opt_{name}") is not None}
    configs = []
    for options in options_list:
        try:
            configs.append(RunConfig.model_validate({**options, **overrides}))
        except ValidationError as err:
            problems = format_validation_error(err)
            raise UsageError("invalid run config:" + ("\n" if "\n" in problems else " ") + problems) from None
    if args.only is not None:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c.optimizer in keep]
        if not configs:
            raise UsageError(f"--only {args.only} keeps none of the runs")
    if args.seeds is not None:
        try:
            configs = with_seeds(configs, [int(part) for part in args.seeds.split(",")])
        except ValueError as err:
            reason = str(err) if str(err).startswith(("seed", "seeds")) else "give whole numbers such as 0,1,2"
            raise UsageError(f"--seeds {echo(args.seeds)}: {reason}") from None
    return configs


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """The validated configs the arguments describe; UsageError with one line per bad field."""
    return _validated(_base_options(args), args)


def default_out_dir(config: RunConfig) -> Path:
    """<runs folder>/<label or optimizer>-<8 hex digits of the training settings>: stable, so --resume
    finds it; the runs folder is $ASAM_LAB_RUNS_DIR, else ./runs."""
    return default_root() / f"{(config.label or config.optimizer).lower().replace(' ', '_')}-{config.identity_digest()[:8]}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ConsoleSink:
    """TrainSink for the foreground: progress bar, a line per epoch, JSON lines in ``out_dir``."""

    def __init__(self, out_dir: Path, config: RunConfig) -> None:
        self.out_dir, self.config = out_dir, config
        self.metrics_path = out_dir / "metrics.jsonl"
        lines = self.metrics_path.read_text().splitlines() if self.metrics_path.exists() else []
        self.metrics = {row["epoch"]: row for row in map(json.loads, lines)}
        self.bar: ProgressBar | None = None
        self.stop_requested = False

    def on_step(self, step: int, total_steps: int, train_loss: float) -> None:
        if self.bar is None:
            self.bar = ProgressBar(total_steps, self.config.label or self.config.optimizer)
        self.bar.update(step, f"loss {train_loss:.3f}")
        with open(self.out_dir / "steps.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "train_loss": train_loss}) + "\n")

    def on_epoch(self, m: EpochMetrics) -> None:
        self.metrics[m.epoch] = asdict(m)
        _write_atomic(self.metrics_path, "".join(json.dumps(self.metrics[e]) + "\n" for e in sorted(self.metrics)))
        test = "not evaluated" if m.test_acc is None else f"loss {m.test_loss:.3f} acc {m.test_acc:6.2%}"
        line = (f"epoch {m.epoch:>3}/{self.config.epochs}  train loss {m.train_loss:.3f} acc {m.train_acc:6.2%}  "
                f"test {test}  lr {m.lr:.3g}  {m.seconds:.1f}s  traj ({m.traj_x:+.4f}, {m.traj_y:+.4f})")
        if self.bar is None:
            print(line, flush=True)
        else:
            self.bar.write(line)

    def should_stop(self) -> bool:
        return self.stop_requested

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _ctrl_c_stops(sink: ConsoleSink) -> Iterator[None]:
    """First Ctrl-C: stop after the current step; a second one interrupts at once."""
    def handler(signum: int, frame: Any) -> None:
        if sink.stop_requested:
            raise KeyboardInterrupt
        sink.stop_requested = True
        print("\nStopping after this step (Ctrl-C again to abort now)...", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_in_foreground(config: RunConfig, out_dir: Path, resume: bool) -> "RunResult":
    """Train ``config`` into ``out_dir`` with console output; writes config.json and result.json."""
    from asam_core.train.loop import train

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "config.json", config.model_dump_json(indent=2))
    print(f"== {config.label or config.optimizer}: {config.model} on {config.dataset}, {config.epochs} epochs -> {out_dir}",
          flush=True)
    sink = ConsoleSink(out_dir, config)
    try:
        with _ctrl_c_stops(sink):
            result = train(config, sink, out_dir, resume=resume)
    finally:
        sink.close()
    _write_atomic(out_dir / "result.json", json.dumps({"status": result.status, "reason": result.reason,
                                                       "epochs_completed": result.epochs_completed}, indent=2))
    print(f"== {result.status}: {result.reason}", flush=True)
    return result


def _run_command(args: argparse.Namespace) -> int:
    options_list = _base_options(args)
    configs = _validated(options_list, args)
    if args.out is None:
        dirs = [default_out_dir(c) for c in configs]
    elif len(options_list) == 1:
        dirs = [args.out]
    else:
        dirs = [args.out / ((c.label or c.optimizer).lower() + (f"-seed{c.seed}" if args.seeds else ""))
                for c in configs]
    if len(set(dirs)) != len(dirs):
        raise UsageError("two runs would share an output folder; give them different labels")
    if not args.resume:
        taken = [str(d) for d in dirs if (d / CHECKPOINT_NAME).exists()]
        if taken:
            raise UsageError(f"{', '.join(taken)} already hold(s) a checkpoint: pass --resume to continue, "
                             "or choose another --out")
    code = EXIT_OK
    for config, out_dir in zip(configs, dirs):
        try:
            result = run_in_foreground(config, out_dir, args.resume)
        except OSError as err:
            print(f"error: cannot write {err.filename or out_dir}: {err.strerror}", file=sys.stderr)
            return EXIT_FAILED
        if result.status == "cancelled":
            return EXIT_INTERRUPTED
        if result.status == "failed":
            code = EXIT_FAILED
    return code


def add_run_command(subparsers: argparse._SubParsersAction) -> None:
    """``run``: train in the foreground."""
    parser = subparsers.add_parser(
        "run", help="train in the foreground",
        description="Train CIFAR runs in the foreground. Presets:\n\n" + "\n\n".join(
            textwrap.fill(f"'{name}': {text} {PRESET_MEASURED[name]}", 100, initial_indent="  ",
                          subsequent_indent="    ")
            for name, text in PRESET_DESCRIPTIONS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(parser)
    parser.add_argument("--out", type=Path, help="output folder; a preset or a list puts each run in OUT/<label> "
                        f"(default: ${ROOT_ENV} or ./runs, then <label>-<hash of the settings>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.set_defaults(handler=_run_command)


# --- the run store: submit, list, show, cancel, retry, export, gc, settings, worker ------------

LIST_COLUMNS = ("run", "status", "progress", "optimizer", "rho", "model", "epochs", "best test acc (%)", "owner",
                "created", "label")


def _store_parser(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
    parser.add_argument("--root", type=Path, metavar="DIR",
                        help=f"folder of the run store (default: ${ROOT_ENV}, else ./runs)")
    return parser


def _existing_store(args: argparse.Namespace) -> RunStore:
    """The store of a command that only reads or edits runs: never created where there is none."""
    return RunStore(args.root, create=False)


def _run_ids(store: RunStore, ids: list[int]) -> list[RunRecord]:
    try:
        return [store.get(run_id) for run_id in ids]
    except UnknownRun as err:
        raise UsageError(err.args[0]) from None


def estimates_that_fit(store: RunStore, configs: list[RunConfig]) -> list[Any]:
    """The resource estimate of each config (asam_core.runs.resources); UsageError naming the first
    that cannot fit this machine, before anything is queued."""
    from asam_core.runs import resources

    finished = resources.finished_runs(store)
    estimates = [resources.estimate(config, finished) for config in configs]
    for config, estimate in zip(configs, estimates):
        problem = resources.refusal(config, estimate)
        if problem:
            raise UsageError(f"{config.label or config.optimizer}: {problem}; nothing was queued")
    return estimates


def _submit_command(args: argparse.Namespace) -> int:
    from asam_core.runs import resources

    configs = configs_from_args(args)
    store = RunStore(args.root)
    estimates = estimates_that_fit(store, configs)
    for config, estimate in zip(configs, estimates):
        try:
            run = store.submit(config, args.owner)
        except ValueError as err:
            raise UsageError(str(err)) from None
        print(f"queued run {run}: {config.optimizer} {config.model}"
              f"{' ' + repr(config.label) if config.label else ''}, seed {config.seed}, {config.epochs} epochs, "
              f"{resources.summary(estimate)}")
    if not store.live_workers(this_host()):
        print(f"no worker is running; start one with: python -m asam_core.runs worker --root {store.root}")
    return EXIT_OK


def _list_command(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    runs = store.list_runs(args.status)
    brief = {run.id: reports.status_text(run, brief=True) for run in runs}
    print(reports.text_table([{**row, "progress": f"{row['progress']:.0%}", "status": brief[row["run"]]}
                              for row in reports.run_rows(runs, store.best_test_acc())], LIST_COLUMNS))
    return EXIT_OK


def _show_command(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    (run,) = _run_ids(store, [args.run_id])
    settings = store.settings()
    print(f"run {run.id}: {reports.status_text(run)}, {run.progress:.0%}, owner {run.owner}, "
          f"attempts {run.attempts} of max_attempts {settings['max_attempts']}")
    print(f"folder: {store.run_dir(run.key)} (key {run.key})")
    if run.status == "running":
        process = f", run process {run.run_pid} on {run.node}" if run.run_pid is not None else ""
        print(f"worker: pid {run.worker_pid} on {run.worker_host}{process}")
    if run.error and run.status != "queued":
        print(f"error: {run.error}")
    if run.config is not None:
        print(run.config.model_dump_json(indent=2))
    print(reports.text_table(store.metrics([run.id]), METRIC_FIELDS))
    return EXIT_OK


def _cancel_command(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    for run in _run_ids(store, args.run_ids):
        status = store.request_cancel(run.id)
        print(f"run {run.id}: " + {"cancelled": "cancelled", "running": "stops at its next step"}.get(
            status, f"already {status}"))
    return EXIT_OK


def _retry_command(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    for run in _run_ids(store, args.run_ids):
        try:
            store.retry(run.id, fresh=args.fresh)
        except ValueError as err:
            raise UsageError(str(err)) from None
        print(f"run {run.id}: queued again, " + ("from scratch" if args.fresh else "resuming from its last checkpoint"))
    if not store.live_workers(this_host()):
        print(f"no worker is running; start one with: python -m asam_core.runs worker --root {store.root}")
    return EXIT_OK


def _export_command(args: argparse.Namespace) -> int:
    check_output(args.out)
    store = _existing_store(args)
    runs = _run_ids(store, args.run_ids) if args.run_ids else store.list_runs()
    return write_output(args.out, reports.metrics_csv(runs, store.metrics([run.id for run in runs])))


def check_output(out: Path | None) -> None:
    """UsageError (before any work) when ``--out``'s folder does not exist."""
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: the folder {out.parent} does not exist")


def write_output(out: Path | None, text: str) -> int:
    """``text`` to ``--out`` (atomically) or standard output; UsageError naming the file when it cannot be written."""
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        _write_atomic(out, text)
    except OSError as err:
        raise UsageError(f"cannot write {out}: {err.strerror}") from None
    return EXIT_OK


def _gc_command(args: argparse.Namespace) -> int:
    removed = _existing_store(args).gc()
    for path in removed:
        print(f"deleted {path}")
    print(f"{len(removed)} path(s) deleted")
    return EXIT_OK


def _settings_command(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    for name in DEFAULT_SETTINGS:
        value = getattr(args, name)
        if value is not None:
            try:
                store.set_setting(name, value)
            except ValueError as err:
                raise UsageError(str(err)) from None
    for name, value in store.settings().items():
        print(f"{name} = {str(value).lower() if isinstance(value, bool) else value}")
    return EXIT_OK


def _worker_command(args: argparse.Namespace) -> int:
    cores = os.cpu_count() or 1
    if args.ray is None and not 1 <= args.slots <= cores:
        raise UsageError(f"--slots must be from 1 to the {cores} CPU core(s) of this machine (got {args.slots})")
    if not (math.isfinite(args.poll) and 0 < args.poll <= MAX_POLL_S):
        raise UsageError(f"--poll must be a number of seconds in (0, {MAX_POLL_S:g}] (got {args.poll})")
    if not (math.isfinite(args.hang_after) and 10 <= args.hang_after <= MAX_HANG_AFTER_S):
        raise UsageError(f"--hang-after must be a number of seconds in [10, {MAX_HANG_AFTER_S:g}] (got {args.hang_after})")
    if args.ray is not None:
        return _ray_worker_command(args)
    from asam_core.runs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    stopped = run_worker(RunStore(args.root), slots=args.slots, exit_when_idle=args.exit_when_idle, poll=args.poll,
                         hang_after=args.hang_after)
    return EXIT_OK if stopped is None else EXIT_FAILED


def _ray_worker_command(args: argparse.Namespace) -> int:
    """``worker --ray ADDRESS``: the worker as a Ray driver (asam_core.runs.ray_worker)."""
    if not args.ray.strip():
        raise UsageError("--ray needs the address of a Ray cluster, e.g. 127.0.0.1:6379")
    if args.slots != SLOTS_DEFAULT:
        raise UsageError("--slots is for the local worker: with --ray the cluster's capacity decides "
                         "(see --cpus-per-run, --gpus-per-run)")
    if not (math.isfinite(args.cpus_per_run) and 0 < args.cpus_per_run <= MAX_RESOURCE_PER_RUN):
        raise UsageError(f"--cpus-per-run must be a number in (0, {MAX_RESOURCE_PER_RUN}] (got {args.cpus_per_run})")
    if args.gpus_per_run is not None and not (math.isfinite(args.gpus_per_run)
                                              and 0 <= args.gpus_per_run <= MAX_RESOURCE_PER_RUN):
        raise UsageError(f"--gpus-per-run must be a number in [0, {MAX_RESOURCE_PER_RUN}] (got {args.gpus_per_run})")
    try:
        from asam_core.runs.ray_worker import RayUnavailable, run_ray_worker
    except ImportError as err:
        if (err.name or "").partition(".")[0] != "ray":
            raise
        print(f"error: {RAY_MISSING}", file=sys.stderr)
        return EXIT_FAILED
    store = RunStore(args.root)
    if args.storage is not None:
        try:
            args.storage.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--storage {args.storage}: cannot create the folder ({err.strerror}); give a folder "
                             "every Ray node can write at that path") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        stopped = run_ray_worker(store, args.ray, args.storage, args.cpus_per_run, args.gpus_per_run,
                                 exit_when_idle=args.exit_when_idle, poll=args.poll, hang_after=args.hang_after)
    except RayUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if stopped is None else EXIT_FAILED


def _default_owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def _bool(text: str) -> bool:
    """argparse type: true / false."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false (got {text[:40]!r})")
    return text.lower() == "true"


def add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    """``submit``, ``list``, ``show``, ``cancel``, ``retry``, ``export``, ``gc``, ``settings`` and ``worker``."""
    parser = _store_parser(subparsers, "submit", "queue runs for the background worker")
    add_config_options(parser)
    parser.add_argument("--owner", default=_default_owner(), help="who queued the runs (default: your user name)")
    parser.set_defaults(handler=_submit_command)

    parser = _store_parser(subparsers, "list", "list the runs, newest first")
    parser.add_argument("--status", action="append", choices=STATUSES, help="only runs with this status (repeatable)")
    parser.set_defaults(handler=_list_command)

    parser = _store_parser(subparsers, "show", "show one run: status, attempts, folder, config and metrics per epoch")
    parser.add_argument("run_id", type=run_id)
    parser.set_defaults(handler=_show_command)

    parser = _store_parser(subparsers, "cancel", "cancel runs (a running one stops at its next step)")
    parser.add_argument("run_ids", type=run_id, nargs="+", metavar="RUN_ID")
    parser.set_defaults(handler=_cancel_command)

    parser = _store_parser(subparsers, "retry", "put failed or cancelled runs back in the queue")
    parser.add_argument("run_ids", type=run_id, nargs="+", metavar="RUN_ID")
    parser.add_argument("--fresh", action="store_true",
                        help="start over (new run folder, metrics dropped) instead of resuming from the last checkpoint")
    parser.set_defaults(handler=_retry_command)

    parser = _store_parser(subparsers, "export", "write the metrics per epoch as CSV")
    parser.add_argument("run_ids", type=run_id, nargs="*", metavar="RUN_ID", help="runs to export (default: all)")
    parser.add_argument("--out", type=Path, metavar="FILE.csv", help="output file (default: standard output)")
    parser.set_defaults(handler=_export_command)

    parser = _store_parser(subparsers, "gc", "delete run folders no run owns and checkpoints of done runs")
    parser.set_defaults(handler=_gc_command)

    parser = _store_parser(subparsers, "settings", "show (or change) the store's settings")
    parser.add_argument("--max-attempts", dest="max_attempts", type=int,
                        help="times a run's process may die before the run is failed (default: "
                             f"{DEFAULT_SETTINGS['max_attempts']})")
    parser.add_argument("--keep-final-weights", dest="keep_final_weights", type=_bool, metavar="true|false",
                        help="keep a done run's last checkpoint as final.pt (default: false)")
    parser.set_defaults(handler=_settings_command)

    parser = _store_parser(subparsers, "worker", "train queued runs until stopped (SIGTERM / Ctrl-C)")
    parser.add_argument("--slots", type=int, default=SLOTS_DEFAULT,
                        help="runs trained at once, one process each (default: 1)")
    parser.add_argument("--poll", type=float, default=0.5,
                        help=f"seconds between looks at the store, at most {MAX_POLL_S:g} (default: 0.5)")
    parser.add_argument("--exit-when-idle", action="store_true", help="exit once nothing is running or queued")
    parser.add_argument("--hang-after", type=float, default=1800.0, metavar="SECONDS",
                        help="a run whose step and epoch do not move for this long is hung: its process is killed "
                             "and the run requeued (or failed after max_attempts) (default: 1800)")
    ray = parser.add_argument_group("Ray backend (pip install -r requirements-ray.txt)")
    ray.add_argument("--ray", metavar="ADDRESS", help="train each run as a Ray task on the cluster at ADDRESS "
                     "(e.g. 127.0.0.1:6379), as many at once as the cluster holds; the app passes $RAY_ADDRESS")
    ray.add_argument("--storage", type=Path, metavar="DIR", help="checkpoint folder every Ray node reaches at "
                     "this path (default: the store's checkpoints folder, for a single machine)")
    ray.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs each run's task asks for (default: 1)")
    ray.add_argument("--gpus-per-run", type=float, help="GPUs each run's task asks for, fractional to share one "
                     "(default: 0.25 on a cluster with GPUs, else 0; runs with device cpu ask for none)")
    parser.set_defaults(handler=_worker_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m asam_core.runs", description="ASAM Lab CIFAR runs")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run_command(subparsers)
    add_store_commands(subparsers)
    from asam_core.runs.study_cli import add_study_command

    add_study_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # the reader went away (``... | head``): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
