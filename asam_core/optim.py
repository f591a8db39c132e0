"""SAM and ASAM as torch.optim.Optimizer wrappers around any base optimizer.

One update (SAM paper Eq. 3; ASAM paper Algorithm 1):

    g    = grad L(w)                              (your first backward)
    eps  = T_w · dual(T_w g)                      first_step():  w <- w + eps
    g'   = grad L(w + eps)                        (your second backward)
    w    <- restore exactly, then base step with g'  second_step()

The wrapper shares the base optimizer's ``param_groups`` (so LR schedulers, ``zero_grad``
and gradient clipping see the same groups) and its ``state_dict`` *is* the base optimizer's
(momentum buffers, Adam moments), plus the sharpness keys stored in every group:
``rho``, ``p``, ``eta`` and ``normalization`` ("none" | "element" | "filter").

Usage::

    opt = ASAM.from_model(model, torch.optim.SGD, rho=0.5, eta=0.01, lr=0.1, momentum=0.9)
    loss_fn(model(x), y).backward()
    opt.first_step(zero_grad=True)
    with frozen_batchnorm_stats(model):
        loss_fn(model(x), y).backward()
    opt.second_step(zero_grad=True)

or ``opt.step(closure)`` where ``closure`` zeroes grads, runs forward + backward and returns
the loss; it is called twice, at w and at w + eps.

Storage: the first ``first_step()`` moves the parameters into one contiguous buffer (each
stays the same ``nn.Parameter`` with the same values, shape and memory format; its ``.data``
becomes a view of the buffer), so that w + eps and the restore are one op each.  Parameters
re-homed later (``model.to(...)``) are noticed and moved again.  Building the buffer costs about
700 small aten ops once; ``opt.compact()`` pays it up front, and ``compact=False`` leaves the
parameters' storage alone (for code that holds on to it).

Gradient clipping: clip after the second backward, before ``second_step()``.
AMP: bf16 ``torch.autocast`` needs nothing special.  With an fp16 ``GradScaler`` scale both
backwards (eps depends only on the gradient's direction, so scaled gradients give the same
eps), then ``scaler.unscale_(opt)`` if you clip (the gradients are unscaled once: second_step
does not unscale them again), and ``opt.second_step(scaler=scaler); scaler.update()``: the
scaler skips the base step on inf/NaN gradients, and w is restored exactly either way.

Gradient accumulation over k micro-batches: backward each micro-batch's loss / k at w, then
``first_step(zero_grad=True)`` once (one perturbation from the accumulated gradient), backward
each micro-batch's loss / k at w + eps, then ``second_step()``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from asam_core.flat import FlatLayout
from asam_core.perturbation import check_hyperparameters, check_normalization, normalization_kind, perturbation_

SHARPNESS_KEYS = ("rho", "p", "eta", "normalization")


def _is_bias(module: nn.Module, param: nn.Parameter) -> bool:
    return getattr(module, "bias", None) is param


def param_groups_for(
    model: nn.Module, normalization: str = "element", normalize_bias: bool = False
) -> list[dict[str, Any]]:
    """Split a model's parameters into groups tagged with the normalization each gets.

    Decided from the modules, not from parameter names: a module's ``bias`` is a bias; the
    kind of every parameter follows ``asam_core.perturbation.normalization_kind`` (biases "none"
    unless ``normalize_bias``; under "filter", weights of two or more dimensions (conv filters,
    Linear rows) filter-wise and the rest element-wise).  Empty groups are left out.
    """
    check_normalization(normalization)
    groups: dict[str, list[nn.Parameter]] = {"none": [], "element": [], "filter": []}
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                groups[normalization_kind(param, _is_bias(module, param), normalization, normalize_bias)].append(param)
    return [{"params": ps, "normalization": kind} for kind, ps in groups.items() if ps]


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Within the block, BatchNorm layers in train mode normalize with batch statistics but
    leave running_mean, running_var and num_batches_tracked untouched (for the second pass)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimization around ``base_optimizer`` (a torch.optim.Optimizer class).

    Args: params (iterable or param groups; a group may carry its own "normalization"),
    base_optimizer, rho >= 0 (region radius), p > 1 (2, inf or any p > 1), eta >= 0
    (ASAM's T_w offset), normalization for groups that do not set it (rho, eta and
    normalization default to the class's ``defaults_for_class``), batched (every
    tensor's leading dimension indexes independent models, each with its own norm, as in
    ``perturbation(batched=True)``), compact (the first ``first_step()`` moves the parameters
    into one contiguous buffer, see the module docstring; False keeps their storage, at the price
    of a few foreach ops per step; ``compact()`` builds the buffer at once), and the base
    optimizer's own keyword arguments (lr, momentum, weight_decay, ...).
    """

    defaults_for_class: dict[str, Any] = dict(rho=0.05, eta=0.0, normalization="none")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        rho: float | None = None,
        p: float = 2.0,
        *,
        eta: float | None = None,
        normalization: str | None = None,
        batched: bool = False,
        compact: bool = True,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise TypeError(
                "base_optimizer must be a torch.optim.Optimizer subclass such as torch.optim.SGD "
                f"(the class, not an instance), got {base_optimizer!r}"
            )
        rho, eta, normalization = (
            self.defaults_for_class[key] if value is None else value
            for key, value in (("rho", rho), ("eta", eta), ("normalization", normalization))
        )
        check_hyperparameters(rho, p, eta)
        check_normalization(normalization)
        super().__init__(params, dict(rho=rho, p=p, eta=eta, normalization=normalization))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        clash = sorted(set(SHARPNESS_KEYS) & set(self.base_optimizer.defaults))
        if clash:
            raise TypeError(f"base_optimizer {base_optimizer.__name__} uses the hyper-parameter name(s) {clash} that SAM needs")
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)
        self.batched = batched
        self.compacting = compact
        self._stepping_for_scaler = False
        self._perturbed: bool | None = None
        self._layout: FlatLayout | None = None

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        *,
        normalization: str | None = None,
        normalize_bias: bool = False,
        **kwargs: Any,
    ) -> "SAM":
        """Build the optimizer over ``param_groups_for(model, normalization, normalize_bias)``."""
        normalization = cls.defaults_for_class["normalization"] if normalization is None else normalization
        groups = param_groups_for(model, normalization, normalize_bias)
        return cls(groups, base_optimizer, normalization=normalization, **kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (to the base optimizer once it exists), validating the sharpness keys."""
        for key, value in self.defaults.items():
            param_group.setdefault(key, value)
        check_hyperparameters(param_group["rho"], param_group["p"], param_group["eta"])
        check_normalization(param_group["normalization"])
        if hasattr(self, "base_optimizer"):
            self.base_optimizer.add_param_group(param_group)
        else:
            super().add_param_group(param_group)

    def _shared(self, key: str) -> Any:
        values = {group[key] for group in self.param_groups}
        if len(values) != 1:
            raise ValueError(f"{key} must be the same in every param group (the norm is global), got {sorted(values)}")
        return values.pop()

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """w <- w + eps (remembering w) for every parameter that requires grad; one whose grad is
        None gets eps = 0, and frozen ones (requires_grad=False) are left alone.

        The first call moves these parameters into one contiguous buffer (see asam_core.flat),
        so that w + eps and the restore are one op each."""
        params, kinds = self._trainable()
        if params:
            layout = self._layout_for(params, kinds)
            layout.save()
            with_grad = [(view, w.grad) for view, w in zip(layout.scratch_views, params) if w.grad is not None]
            if len(with_grad) < len(params):
                layout.scratch.zero_()
            if with_grad:
                torch._foreach_copy_([view for view, _ in with_grad], [g for _, g in with_grad])
            perturbation_(
                layout.scratch_parts, layout.backup_parts, rho=self._shared("rho"), p=self._shared("p"),
                kinds=layout.part_kinds, eta=self._shared("eta"), batched=self.batched,
            )
            layout.add_scratch()
        self._perturbed = bool(params)
        if zero_grad:
            self.zero_grad()

    def _layout_for(self, params: list[Tensor], kinds: list[str]) -> FlatLayout:
        if self._layout is None or self._layout.key != FlatLayout.key_for(params, kinds):
            self._layout = FlatLayout(params, kinds, self.batched, owns_storage=self.compacting)
        return self._layout

    def _trainable(self) -> tuple[list[Tensor], list[str]]:
        pairs = [(w, group["normalization"]) for group in self.param_groups for w in group["params"] if w.requires_grad]
        return [w for w, _ in pairs], [k for _, k in pairs]

    @torch.no_grad()
    def compact(self) -> "SAM":
        """Move the trainable parameters into the optimizer's contiguous buffer now (instead of at
        the first ``first_step()``), and keep them there from then on; returns the optimizer."""
        self.compacting = True
        params, kinds = self._trainable()
        if params:
            self._layout_for(params, kinds)
        return self

    @torch.no_grad()
    def restore(self) -> None:
        """w + eps <- w, by copy (bit-exact)."""
        if self._perturbed is None:
            raise RuntimeError("restore()/second_step() called without a preceding first_step()")
        if self._perturbed:
            self._layout.restore()
        self._perturbed = None

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False, scaler: torch.amp.GradScaler | None = None) -> None:
        """Restore w, then take the base optimizer's step with the gradient from w + eps."""
        self.restore()
        self.base_step(scaler)
        if zero_grad:
            self.zero_grad()

    def base_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """The base optimizer's step with the gradients now in .grad; with ``scaler`` it goes through
        ``scaler.step(self)``, which unscales the gradients unless ``scaler.unscale_(self)`` already
        did this iteration, and skips the step when they hold inf/NaN."""
        if scaler is None:
            self.base_optimizer.step()
        else:
            self._stepping_for_scaler = True
            try:
                scaler.step(self)
            finally:
                self._stepping_for_scaler = False
        # LR schedulers watch this flag to check that the optimizer stepped before them.
        self._opt_called = True

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Full update with ``closure`` (zero grads, forward, backward, return loss), called at
        w and at w + eps; returns the loss at w.  Called as ``step(closure)`` or
        ``step(closure=closure)``, the way PyTorch Lightning's automatic optimization and HF
        accelerate call an optimizer."""
        if self._stepping_for_scaler:
            return self.base_optimizer.step()
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step needs a closure (it evaluates the loss twice); "
                "or call first_step() and second_step() around your own backward passes"
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state_dict (its groups carry rho, p, eta, normalization)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups


class ASAM(SAM):
    """Adaptive SAM: SAM with T_w = diag(|w| + eta) (element-wise by default).

    Defaults follow the paper's CIFAR-10 setting: rho = 0.5, eta = 0.01.  Build it with
    ``ASAM.from_model(model, ...)`` so biases stay unnormalized; passing
    ``model.parameters()`` normalizes every tensor (the "with bias normalization" variant).
    """

    defaults_for_class = dict(rho=0.5, eta=0.01, normalization="element")
