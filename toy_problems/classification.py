"""2-D classification toys: datasets, symmetric label noise, a ReLU MLP, full-batch training
with SGD / SAM / ASAM from one initialization, and decision-boundary grids.

Everything is batched over ``members``: member k of a run uses seed + k for its points and
initialization and flip_seed + k for its label flips (each stream its own generator), so
several seeds train together in one batched model (weights shaped (members, out, in)).  The
optimizers train together too: one model holds every (optimizer, seed) pair, and
asam_core.step.member_methods_step gives each optimizer's members their own perturbation (none
for SGD) in one batched computation, exactly as if each member were trained alone by its optimizer.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from asam_core.methods import METHODS, method
from asam_core.step import MemberMethod, RowRegions, member_methods_step
from toy_problems.threads import torch_threads

DATASETS = ("spirals", "moons", "circles")
OPTIMIZERS = tuple(entry.title for entry in METHODS.values())
METRICS = ("train_acc", "test_acc", "train_loss", "flipped_fit")
_DATA, _FLIPS, _INIT = 0, 1, 2


def _generator(seed: int, stream: int) -> torch.Generator:
    """An independent generator per (seed, stream), so data, flips and weights never share draws."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream]).generate_state(1)[0]))


def make_points(name: str, n: int, noise: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points (n, 2) with clean labels (n,) in {0, 1}, classes of sizes n - n//2 and n//2.

    spirals: r = t, angle 3.5 pi t + pi c, t = sqrt(u) (uniform density along the arms);
    moons:   the upper half circle and the shifted lower one (as in scikit-learn);
    circles: radius 1 for class 0, 0.5 for class 1.
    Gaussian jitter of std ``noise`` is added to every coordinate.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    y = (torch.arange(n) >= n - n // 2).long()
    u = torch.rand(n, generator=generator)
    if name == "spirals":
        t = 0.05 + 0.95 * u.sqrt()
        angle = 3.5 * math.pi * t + math.pi * y
        x = torch.stack([t * angle.cos(), t * angle.sin()], dim=1)
    elif name == "moons":
        angle = math.pi * u
        upper = torch.stack([angle.cos() - 0.5, angle.sin() - 0.25], dim=1)
        lower = torch.stack([0.5 - angle.cos(), 0.25 - angle.sin()], dim=1)
        x = torch.where(y[:, None] == 0, upper, lower)
    else:
        angle = 2 * math.pi * u
        radius = 1.0 - 0.5 * y
        x = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return x + noise * torch.randn(n, 2, generator=generator), y


def flip_labels(y: Tensor, rate: float, generator: torch.Generator, classes: int = 2) -> tuple[Tensor, Tensor]:
    """Symmetric label noise: exactly round(rate * n) points, chosen uniformly, get a label drawn
    uniformly from the other classes.  Returns (noisy labels, flipped mask)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"flip rate must be in [0, 1], got {rate!r}")
    n = len(y)
    chosen = torch.randperm(n, generator=generator)[: round(rate * n)]
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[chosen] = True
    shift = torch.randint(1, classes, (n,), generator=generator)
    return torch.where(flipped, (y + shift) % classes, y), flipped


class BatchedLinear(nn.Module):
    """``members`` independent affine maps: (members, N, in) -> (members, N, out)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class MLP(nn.Module):
    """One ReLU MLP 2 -> width (depth times) -> classes per seed, evaluated together.

    Member k is initialized like torch.nn.Linear (weights and biases uniform in
    +-1/sqrt(fan_in)) from its own generator, so equal seeds give equal initial weights.
    ``forward`` takes points (N, 2), shared by all members, or (members, N, 2).
    """

    def __init__(self, seeds: Sequence[int], width: int, depth: int, classes: int = 2) -> None:
        super().__init__()
        sizes = [2] + [width] * depth + [classes]
        self.layers = nn.ModuleList(BatchedLinear(len(seeds), a, b) for a, b in zip(sizes, sizes[1:]))
        with torch.no_grad():
            for k, seed in enumerate(seeds):
                generator = _generator(seed, _INIT)
                for layer in self.layers:
                    bound = 1.0 / math.sqrt(layer.weight.shape[2])
                    for tensor in (layer.weight[k], layer.bias[k]):
                        tensor.copy_(torch.rand(tensor.shape, generator=generator) * 2 * bound - bound)

    @property
    def members(self) -> int:
        return self.layers[0].weight.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        x = x.expand(self.members, *x.shape) if x.dim() == 2 else x
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == 0 else layer(torch.relu(x))
        return x

    def select(self, rows: slice) -> "MLP":
        """The members ``rows`` as an MLP of their own (a copy)."""
        part = copy.deepcopy(self)
        for layer in part.layers:
            layer.weight = nn.Parameter(layer.weight.detach()[rows].clone())
            layer.bias = nn.Parameter(layer.bias.detach()[rows].clone())
        return part

    @classmethod
    def stack(cls, networks: Sequence[nn.Sequential]) -> "MLP":
        """The inverse of ``member``: networks of its form (one architecture, 2-D inputs) as the members
        of one MLP, a copy in their dtype."""
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in networks]
        shapes = {tuple(layer.weight.shape for layer in layers) for layers in linears}
        if len(shapes) != 1 or len(linears[0]) < 2 or linears[0][0].in_features != 2:
            raise ValueError(f"networks must be ReLU MLPs of one architecture on 2-D inputs, got shapes {sorted(shapes)}")
        first = linears[0]
        model = cls([0], first[0].out_features, len(first) - 1, first[-1].out_features)  # its weights replaced below
        for i, layer in enumerate(model.layers):
            layer.weight = nn.Parameter(torch.stack([layers[i].weight.detach() for layers in linears]))
            layer.bias = nn.Parameter(torch.stack([layers[i].bias.detach() for layers in linears]))
        return model

    def member(self, k: int) -> nn.Sequential:
        """Member k as a plain nn.Sequential of nn.Linear and nn.ReLU (a copy, in the model's dtype)."""
        modules: list[nn.Module] = []
        for layer in self.layers:
            linear = nn.Linear(layer.weight.shape[2], layer.weight.shape[1], dtype=layer.weight.dtype)
            with torch.no_grad():
                linear.weight.copy_(layer.weight[k])
                linear.bias.copy_(layer.bias[k])
            modules += [linear, nn.ReLU()]
        return nn.Sequential(*modules[:-1])


def ensemble_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Sum over members of each member's mean cross-entropy: (members, N, C), (members, N) -> ().

    Its gradient with respect to member k's weights is member k's own mean-loss gradient."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum") / targets.shape[1]


def member_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """Each member's mean cross-entropy: (members, N, C), (members, N) -> (members,)."""
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)


def grid_axes(points: Tensor, resolution: int, margin: float = 0.25) -> tuple[Tensor, Tensor]:
    """x1 and x2 coordinates of a square-cell grid covering the points plus a margin."""
    low = points.reshape(-1, 2).amin(0) - margin
    high = points.reshape(-1, 2).amax(0) + margin
    return (
        torch.linspace(low[0], high[0], resolution, dtype=points.dtype),
        torch.linspace(low[1], high[1], resolution, dtype=points.dtype),
    )


@torch.no_grad()
def decision_grid(model: nn.Module, x1: Tensor, x2: Tensor) -> Tensor:
    """P(class 1 | x) = softmax(model(x))[1] on the grid, shaped (..., len(x2), len(x1)) (row = x2).

    Works for any model mapping (P, 2) points to (..., P, classes) logits: an MLP of many
    members or a plain nn.Sequential."""
    points = torch.cartesian_prod(x2, x1).flip(1)
    probs = model(points).softmax(-1)[..., 1]
    return probs.reshape(*probs.shape[:-1], len(x2), len(x1))


class ClassifierConfig(BaseModel):
    """One noisy-label experiment: data, network, training, and what to record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: Literal["spirals", "moons", "circles"] = "spirals"
    n_train: int = Field(200, ge=10, le=5000, description="training points")
    n_test: int = Field(1000, ge=10, le=20000, description="clean test points")
    noise: float = Field(0.03, ge=0.0, le=0.5, description="std of the Gaussian jitter of the points")
    flip_rate: float = Field(0.3, ge=0.0, le=0.5, description="fraction of training labels flipped")
    seed: int = Field(0, ge=0, le=1_000_000, description="points and initialization of member 0")
    flip_seed: int = Field(0, ge=0, le=1_000_000, description="label flips of member 0")
    members: int = Field(1, ge=1, le=16, description="seeds trained together: seed + k, flip_seed + k")
    width: int = Field(64, ge=2, le=2048)
    depth: int = Field(2, ge=1, le=8)
    steps: int = Field(1000, ge=1, le=100_000)
    lr: float = Field(0.1, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    schedule: Literal["constant", "cosine"] = Field("constant", description="learning rate over the steps")
    rho_sam: float = Field(0.05, ge=0.0, le=10.0)
    rho_asam: float = Field(0.5, ge=0.0, le=50.0)
    eta: float = Field(0.01, ge=0.0, le=1.0)
    p: float = Field(2.0, gt=1.0)
    optimizers: tuple[Literal[OPTIMIZERS], ...] = OPTIMIZERS
    evals: int = Field(41, ge=2, le=1000, description="metric points over training, first and last included")
    snapshots: int = Field(5, ge=1, le=50, description="decision grids over training, last included")
    resolution: int = Field(80, ge=8, le=400, description="decision grid points per axis")

    def rho_of(self, key: str) -> float:
        """rho of the registry method ``key``: the page's SAM and ASAM controls, the registry's default otherwise."""
        return {"sam": self.rho_sam, "asam": self.rho_asam}.get(key, METHODS[key].default_rho("cifar10"))


@dataclass
class ClassifierData:
    """Per member: training points, noisy labels, flip mask and a clean test set."""

    x_train: Tensor
    y_train: Tensor
    flipped: Tensor
    x_test: Tensor
    y_test: Tensor


def tiled(data: ClassifierData, times: int) -> ClassifierData:
    """The members' data repeated ``times`` over (member i * members + k has member k's data)."""
    return ClassifierData(*(t.repeat(times, *([1] * (t.dim() - 1))) for t in vars(data).values()))


def make_data(config: ClassifierConfig) -> ClassifierData:
    """Stacked data of the members: training and test points are independent draws of the
    same distribution; only training labels are flipped."""
    parts = []
    for k in range(config.members):
        generator = _generator(config.seed + k, _DATA)
        x, y = make_points(config.dataset, config.n_train, config.noise, generator)
        x_test, y_test = make_points(config.dataset, config.n_test, config.noise, generator)
        y_noisy, flipped = flip_labels(y, config.flip_rate, _generator(config.flip_seed + k, _FLIPS))
        parts.append((x, y_noisy, flipped, x_test, y_test))
    return ClassifierData(*(torch.stack(column) for column in zip(*parts)))


@dataclass
class ClassifierRun:
    """Result of train_classifiers; arrays are indexed [optimizer, member, ...] in config.optimizers order.

    metrics[name][o, k, i]: train_acc (on the noisy labels), test_acc (clean test set),
    train_loss and flipped_fit (fraction of flipped points fitted to their wrong label) at
    eval_steps[i]; grids[o, k, s]: P(class 1) on (x1, x2) at snapshot_steps[s]."""

    config: ClassifierConfig
    data: ClassifierData
    eval_steps: np.ndarray
    metrics: dict[str, np.ndarray]
    snapshot_steps: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    grids: np.ndarray
    models: dict[str, MLP] = field(repr=False)

    def seed_mean_curves(self, metric: str) -> dict[str, np.ndarray]:
        """The metric at every eval step, averaged over members (seeds), per optimizer."""
        return dict(zip(self.config.optimizers, self.metrics[metric].mean(axis=1)))

    def final(self, metric: str) -> dict[str, float]:
        """The metric at the last step, averaged over members, per optimizer."""
        values = self.metrics[metric][:, :, -1].mean(axis=1)
        return dict(zip(self.config.optimizers, values.tolist()))


def member_method(name: str, model: MLP, rows: slice, config: ClassifierConfig) -> MemberMethod:
    """The registry's method ``name`` (a title such as "ASAM", asam_core.methods) for the members
    ``rows``: its region (rho from the page's controls, p, eta; biases stay unnormalized), or a plain
    step for a method without one."""
    entry = method(name)
    region = entry.perturbation_arguments(config.rho_of(entry.key), config.p, config.eta) if entry.sharpness_aware else None
    return MemberMethod.of(model, rows, region)


@torch.no_grad()
def evaluate(model: MLP, data: ClassifierData) -> dict[str, Tensor]:
    """Per-member metrics (see ClassifierRun)."""
    logits = model(data.x_train)
    fit = (logits.argmax(-1) == data.y_train).float()
    flipped = data.flipped.float()
    return {
        "train_acc": fit.mean(1),
        "test_acc": (model(data.x_test).argmax(-1) == data.y_test).float().mean(1),
        "train_loss": F.cross_entropy(logits.transpose(1, 2), data.y_train, reduction="none").mean(1),
        "flipped_fit": (fit * flipped).sum(1) / flipped.sum(1).clamp_min(1.0),
    }


def _marks(steps: int, count: int) -> np.ndarray:
    """Up to ``count`` distinct steps spread evenly over [0, steps], always ending at steps."""
    return np.unique(np.round(np.linspace(steps, 0, count)).astype(int))


def train_classifiers(
    config: ClassifierConfig, progress: Callable[[int, int], None] | None = None, threads: int = 1,
    progress_calls: int = 100,
) -> ClassifierRun:
    """Train every optimizer in config.optimizers from the same initialization on the same noisy
    data, all optimizers and members in one batched model, full batch, recording metrics and grids.

    ``progress(step, steps)`` is called about ``progress_calls`` times during training, the last time
    at step = steps.  ``threads``: torch intra-op threads meanwhile (1 is fastest here;
    benchmarks/noisy_labels.py)."""
    with torch_threads(threads):
        return _train(config, progress, progress_calls)


def _train(config: ClassifierConfig, progress: Callable[[int, int], None] | None, progress_calls: int) -> ClassifierRun:
    data = make_data(config)
    names, k = config.optimizers, config.members
    everyone = tiled(data, len(names))  # member o * k + i: optimizer o, seed + i
    model = MLP([config.seed + i for i in range(k)] * len(names), config.width, config.depth)
    # foreach: one op per step for all tensors (on the CPU torch's default is a loop over them; 13 % of a run)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, foreach=True)
    members = [member_method(name, model, slice(o * k, (o + 1) * k), config) for o, name in enumerate(names)]
    regions = RowRegions.of(list(model.parameters()), members)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps) if config.schedule == "cosine" else None
    eval_steps = _marks(config.steps, config.evals)
    snapshot_steps = _marks(config.steps, config.snapshots)
    x1, x2 = grid_axes(torch.cat([data.x_train.flatten(0, 1), data.x_test.flatten(0, 1)]), config.resolution)
    history: dict[str, list[Tensor]] = {name: [] for name in METRICS}
    grids = []
    report_every = max(1, config.steps // progress_calls)
    eval_set, snapshot_set = set(eval_steps.tolist()), set(snapshot_steps.tolist())
    for step in range(config.steps + 1):
        if step in eval_set:
            scores = evaluate(model, everyone)
            for name in METRICS:
                history[name].append(scores[name].reshape(len(names), k))
        if step in snapshot_set:
            grids.append(decision_grid(model, x1, x2).reshape(len(names), k, len(x2), len(x1)))
        if step == config.steps:
            break
        member_methods_step(optimizer, model, ensemble_loss, everyone.x_train, everyone.y_train, regions)
        if schedule is not None:
            schedule.step()
        if progress is not None and ((step + 1) % report_every == 0 or step + 1 == config.steps):
            progress(step + 1, config.steps)
    return ClassifierRun(
        config=config,
        data=data,
        eval_steps=eval_steps,
        metrics={name: torch.stack(values, dim=-1).numpy() for name, values in history.items()},
        snapshot_steps=snapshot_steps,
        x1=x1.numpy(),
        x2=x2.numpy(),
        grids=torch.stack(grids, dim=2).numpy(),
        models={name: model.select(member.rows) for name, member in zip(names, members)},
    )
