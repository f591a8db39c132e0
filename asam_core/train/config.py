"""RunConfig: every option of a CIFAR run, validated once at the boundary (form, CLI, JSON, SQLite).

Defaults are the ASAM paper's recipe (Section 5.2): batch 128, SGD with momentum 0.9, weight
decay 5e-4, cosine schedule from lr 0.1 over all steps, label smoothing 0.1, 200 epochs.
``rho`` and ``normalization`` left unset take the paper's value for the chosen optimizer and
dataset (``paper_rho``; "none" for SAM, "element" for ASAM), so a dumped config always holds
the values the run used.  For "sgd" the sharpness options are ignored.

``format_validation_error`` turns a pydantic ValidationError into one line per bad field,
e.g. ``rho: must be >= 0 (got -1)``, echoing at most 80 characters of the bad value.  Every
number has an upper bound a user could mean (lr <= 10, rho <= 10, eta <= 1, weight_decay <= 1),
strings a length limit, and data_dir must not be blank or hold a NUL byte: bad values never
reach torch.  ``PRESETS`` maps a preset's title to its SGD / SAM / ASAM
triple; ``PRESET_DESCRIPTIONS`` says what each can and cannot show at its cost.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asam_core.methods import METHODS
from asam_core.train.model_names import ModelName

OptimizerName = Literal[tuple(METHODS)]  # the registry's keys (asam_core.methods)

# Fields that change what is reported or where data is read from, not what is trained: a run
# may be resumed with different values of these.
REPORTING_FIELDS = frozenset({"label", "data_dir", "download", "log_every_steps", "eval_every_epochs",
                              "flatness_every_epochs"})


def paper_rho(dataset: str, optimizer: str) -> float:
    """The paper's rho of ``optimizer`` on ``dataset`` (asam_core.methods; 0 for methods without a region)."""
    return METHODS[optimizer].default_rho(dataset)


def default_normalization(optimizer: str) -> str:
    """T_w of ``optimizer`` unless set (asam_core.methods): "element" for ASAM, "none" for SAM and SGD."""
    return METHODS[optimizer].normalization


class RunConfig(BaseModel):
    """One CIFAR training run.  Unknown keys and out-of-range values are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, ser_json_inf_nan="strings")

    label: str = Field("", title="Label", max_length=100, description="free-text name shown in tables and legends")
    dataset: Literal["cifar10", "cifar100"] = Field("cifar10", title="Dataset", description="CIFAR-10 or CIFAR-100")
    data_dir: str = Field("data", title="Data folder (CIFAR archive)", min_length=1, max_length=1024,
                          description="folder holding the archive or its extracted folder")
    download: bool = Field(True, title="Download the archive if missing",
                           description="download the official archive when it is missing")
    subset_per_class: int | None = Field(None, title="Training images per class", ge=1,
                                         description="train on the first N images of every class")
    label_noise: float = Field(0.0, title="Label noise (fraction flipped)", ge=0, lt=1,
                               description="fraction of training labels flipped to another class")
    noise_seed: int = Field(0, title="Label-noise seed", ge=0, description="seed of the label noise")
    augment: bool = Field(True, title="Augmentation (crop + flip)",
                          description="random crop (4-pixel padding) and horizontal flip")
    model: ModelName = Field("resnet20", title="Network", description="network architecture")
    dropout: float = Field(0.0, title="Dropout before the classifier", ge=0, lt=1,
                           description="dropout probability before the final linear layer (0: none)")
    optimizer: OptimizerName = Field("asam", title="Optimizer",
                                     description=f"training method: {', '.join(METHODS)} (asam_core.methods)")
    rho: float | None = Field(None, title="ρ (region radius)", ge=0, le=10,
                              description="radius of the maximization region")
    eta: float = Field(0.01, title="η (ASAM offset)", ge=0, le=1, description="ASAM offset in T_w = diag(|w| + eta)")
    p: float = Field(2.0, title="p (region norm)", gt=1, allow_inf_nan=True,
                     description="norm of the region: 2, inf or any p > 1")
    normalization: Literal["none", "element", "filter"] | None = Field(
        None, title="T_w normalization", description="T_w: none (SAM), element (ASAM) or filter")
    normalize_bias: bool = Field(False, title="Normalize biases",
                                 description="normalize biases too (the paper's variant)")
    m: int | None = Field(None, title="m (examples per perturbation)", ge=1,
                          description="m-sharpness: examples per perturbation")
    epochs: int = Field(200, title="Epochs", ge=1, le=10_000, description="training epochs")
    batch_size: int = Field(128, title="Batch size (images)", ge=2, le=8192, description="training batch size")
    lr: float = Field(0.1, title="Learning rate (peak)", gt=0, le=10,
                      description="peak learning rate of the cosine schedule")
    momentum: float = Field(0.9, title="Momentum", ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(5e-4, title="Weight decay", ge=0, le=1,
                                description="L2 weight decay (in the base optimizer)")
    nesterov: bool = Field(False, title="Nesterov momentum", description="Nesterov momentum")
    label_smoothing: float = Field(0.1, title="Label smoothing", ge=0, lt=1,
                                   description="label smoothing of the training loss")
    seed: int = Field(0, title="Seed", ge=0, le=2**63 - 1,
                      description="seed of the initialization, data order and augmentation")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", title="Device", description="auto picks cuda when available")
    bf16: bool = Field(True, title="bf16 on GPU", description="bf16 autocast on CUDA (ignored on CPU)")
    eval_every_epochs: int = Field(1, title="Test every N epochs", ge=1,
                                   description="evaluate on the test set every N epochs (and the last)")
    log_every_steps: int = Field(20, title="Log loss every N steps", ge=1,
                                 description="report the training loss every N steps")
    flatness_every_epochs: int = Field(0, title="Flatness every N epochs (0: at the end)", ge=0, le=10_000,
                                       description="also measure flatness (sharpness, adaptive "
                                       "sharpness, lambda_max, loss profile) every N epochs; 0: at the end only")

    @field_validator("data_dir")
    @classmethod
    def _usable_path(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("must not contain a NUL byte")
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _resolve_defaults(self) -> "RunConfig":
        if self.rho is None:
            self.rho = paper_rho(self.dataset, self.optimizer)
        if self.normalization is None:
            self.normalization = default_normalization(self.optimizer)
        if self.m is not None and self.m > self.batch_size:
            raise ValueError(f"m: must be <= batch_size ({self.batch_size}) (got {self.m})")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0 (got momentum 0)")
        return self

    def options(self) -> dict[str, Any]:
        """The options that differ from the defaults (rho and normalization count as default when
        they equal what this dataset and optimizer resolve to): enough to rebuild this config,
        and what to override when deriving a config for another dataset or optimizer."""
        options = self.model_dump(mode="json", exclude_defaults=True)
        if self.rho == paper_rho(self.dataset, self.optimizer):
            options.pop("rho", None)
        if self.normalization == default_normalization(self.optimizer):
            options.pop("normalization", None)
        return options

    def training_identity(self) -> dict[str, Any]:
        """The fields that determine the trained weights (all but REPORTING_FIELDS)."""
        return self.model_dump(mode="json", exclude=set(REPORTING_FIELDS))

    def identity_digest(self) -> str:
        """SHA-1 (hex) of the training identity: equal digests train the same weights."""
        return hashlib.sha1(json.dumps(self.training_identity(), sort_keys=True).encode()).hexdigest()


_RANGE_WORDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_RANGE_KEYS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


ECHO_CHARS = 80


def echo(value: Any) -> str:
    """``repr(value)``, cut to ECHO_CHARS characters: an error never repeats a huge input in full."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS - 3] + "..."


def _number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _describe(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _RANGE_WORDS:
        return f"must be {_RANGE_WORDS[kind]} {_number(ctx[_RANGE_KEYS[kind]])}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "extra_forbidden":
        return "is not an option (see RunConfig for the allowed ones)"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("string_too_long", "string_too_short"):
        return re.sub(r"^String should", "must", error["msg"])
    if kind == "value_error":
        return re.sub(r"^Value error, ", "", error["msg"])
    return error["msg"]


def format_validation_error(err: ValidationError) -> str:
    """One line per bad field: ``field: what is allowed (got value)``."""
    lines = []
    for error in err.errors():
        loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("function-", "literal[")))
        if not loc:  # a model-level check, already phrased "field: ..."
            lines.append(re.sub(r"^Value error, ", "", error["msg"]))
            continue
        lines.append(f"{loc}: {_describe(error)} (got {echo(error['input'])})")
    return "\n".join(lines)


def _triple(**common: Any) -> list[RunConfig]:
    return [RunConfig(label=METHODS[name].title, optimizer=name, **common) for name in ("sgd", "sam", "asam")]


CLASSROOM_NOISE = "Classroom: label noise (CPU)"
CLASSROOM_QUICK = "Classroom quick"
PAPER_TABLE2 = "Paper Table 2: ResNet-20 CIFAR-10"
PAPER_TABLE6 = "Paper Table 6: label noise 40%"

PRESETS: dict[str, list[RunConfig]] = {
    CLASSROOM_NOISE: _triple(model="small_cnn", subset_per_class=100, label_noise=0.4, epochs=20, lr=0.05,
                             augment=False, eval_every_epochs=5, log_every_steps=5),
    CLASSROOM_QUICK: _triple(model="small_cnn", subset_per_class=500, epochs=8, lr=0.05, log_every_steps=5),
    PAPER_TABLE2: _triple(model="resnet20"),
    PAPER_TABLE6: _triple(model="resnet32", label_noise=0.4),
}

# What each preset is for (short; what it cannot show starts with "Cannot show" or "Needs a GPU").
PRESET_DESCRIPTIONS: dict[str, str] = {
    CLASSROOM_NOISE: (
        "SAM §3.3 / ASAM Table 6 on a CPU: a small CNN on 1,000 CIFAR-10 images (100 per class) with 40% of "
        "their labels flipped, 20 epochs without augmentation. SGD memorizes the flipped labels; SAM and ASAM fit "
        "fewer of them, score higher on the clean test set and end flatter (lower λ_max, sharpness and loss "
        "profile). Cannot show the paper's absolute accuracies (a small network on a fiftieth of the data)."
    ),
    CLASSROOM_QUICK: (
        "A small CNN on 5,000 clean CIFAR-10 images for 8 epochs: learning curves, paths and the price of "
        "the second pass in a few minutes. Cannot show the accuracy gains: at this budget the networks "
        "underfit and SGD scores highest."
    ),
    PAPER_TABLE2: (
        "The ResNet-20 row of ASAM Table 2: all of CIFAR-10, 200 epochs, the paper's recipe (SAM ρ 0.05, "
        "ASAM ρ 0.5, η 0.01). The gains are well under a point: queue several seeds. Needs a GPU: about 11 min "
        "(SGD) and 21 min (SAM, ASAM) per run on one data-centre card, by the resource guard's table (not "
        "measured here); days on a 2-core CPU."
    ),
    PAPER_TABLE6: (
        "The 40% column of ASAM Table 6: ResNet-32 on CIFAR-10 with 40% of the training labels flipped "
        "(test labels clean), 200 epochs. Needs a GPU: about 18 min (SGD) and 36 min (SAM, ASAM) per run on "
        "one data-centre card, by the resource guard's table (not measured here)."
    ),
}

# Measured results, in one place (benchmarks/README.md has the search and the commands).
PRESET_MEASURED: dict[str, str] = {
    CLASSROOM_NOISE: ("Measured (4 seeds, JPEG CIFAR-10, 95% intervals): clean test accuracy SGD 33.2 ± 0.8%, "
                      "SAM 36.6 ± 1.7%, ASAM 35.9 ± 1.8%; SAM − SGD +3.4 ± 1.2 points, ASAM − SGD +2.7 ± 1.2. "
                      "λ_max at the end: SGD 484 ± 50, SAM 198 ± 93, ASAM 225 ± 130 (differences −285 ± 120 and "
                      "−258 ± 130). One seed of all three took 5–8 min on 2 CPU cores shared with other jobs."),
    CLASSROOM_QUICK: ("Measured (one seed, 2 CPU cores): clean test accuracy SGD 57.7%, SAM 52.7%, ASAM 51.8%; "
                      "about 2 min (SGD) and 3 min (SAM, ASAM) per run."),
    PAPER_TABLE2: "Not measured here (no GPU was available).",
    PAPER_TABLE6: "Not measured here (no GPU was available).",
}


MAX_SEEDS = 20


def with_seeds(configs: Sequence[RunConfig], seeds: Sequence[int]) -> list[RunConfig]:
    """Every config once per seed, in order (config-major): runs that differ only in their seed, which
    the CIFAR page and reports group into mean +- 95% interval.  ValueError names a bad seed."""
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: give 1 to {MAX_SEEDS} different seeds (got {list(seeds)[:MAX_SEEDS + 1]})")
    runs = []
    for config in configs:
        for seed in seeds:
            try:
                runs.append(RunConfig.model_validate({**config.model_dump(), "seed": seed}))
            except ValidationError as err:
                raise ValueError(format_validation_error(err)) from None
    return runs


def find_preset(name: str) -> str:
    """The PRESETS key matching ``name`` ignoring case and punctuation ("classroom-quick" works)."""
    def key(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    for title in PRESETS:
        if key(title) == key(name):
            return title
    raise KeyError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
