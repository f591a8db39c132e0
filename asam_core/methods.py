"""The one registry of training methods: a method's name, optimizer, defaults, look and step.

    METHODS[key] -> Method(key, title, optimizer, normalization, paper_rho, eta, color, dash)

Everything that lists, builds, steps or draws a method reads it here: RunConfig (the allowed
names, the default rho and T_w), the CIFAR loop (``Method.build``, then
``asam_core.step.training_step``, which takes a sharpness-aware step, with m-sharpness, for
SAM-family optimizers and a plain base step otherwise), the toy trajectory simulator and the 2-D
classifier toys (``Method.perturbation_arguments``; the classifiers train every method in one
batched model with ``asam_core.step.member_methods_step``) and the pages (title, colour, line style).  Adding a method
is one entry here, plus its formula in asam_core.perturbation if it needs a new one.

Importing this module does not import torch (the run store's command line reads it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class Method:
    """One training method.

    optimizer: the class name in asam_core.optim that wraps the base optimizer (None: the base
    optimizer alone); normalization: its default T_w ("none", "element" or "filter");
    paper_rho: dataset -> the paper's rho (ASAM paper Section 5.2); eta: default T_w offset;
    color, dash: how every page draws it."""

    key: str
    title: str
    optimizer: str | None
    normalization: str
    paper_rho: Mapping[str, float] = field(default_factory=dict)
    eta: float = 0.0
    color: str = "#4d4d4d"
    dash: str = "solid"

    @property
    def sharpness_aware(self) -> bool:
        return self.optimizer is not None

    @property
    def adaptive(self) -> bool:
        """Whether T_w depends on w (ASAM's normalized region)."""
        return self.normalization != "none"

    def default_rho(self, dataset: str) -> float:
        """The paper's rho for ``dataset``; CIFAR-10's when the paper gives none; 0 without a region."""
        return self.paper_rho.get(dataset, self.paper_rho.get("cifar10", 0.0))

    def perturbation_arguments(self, rho: float, p: float, eta: float) -> dict[str, Any]:
        """Keyword arguments of asam_core.perturbation for this method's region."""
        return dict(rho=rho, p=p, kinds=self.normalization, eta=eta if self.adaptive else 0.0)

    def build(
        self,
        model: "nn.Module",
        base: "type[torch.optim.Optimizer] | None" = None,
        *,
        rho: float | None = None,
        p: float = 2.0,
        eta: float | None = None,
        normalization: str | None = None,
        normalize_bias: bool = False,
        batched: bool = False,
        dataset: str = "cifar10",
        **base_kwargs: Any,
    ) -> "torch.optim.Optimizer":
        """This method's optimizer over ``model`` around ``base`` (default torch.optim.SGD) with the
        base optimizer's keyword arguments; unset rho / eta / normalization take this entry's defaults."""
        import torch

        base = torch.optim.SGD if base is None else base
        if self.optimizer is None:
            return base(model.parameters(), **base_kwargs)
        cls = getattr(importlib.import_module("asam_core.optim"), self.optimizer)
        return cls.from_model(
            model, base, normalization=normalization or self.normalization, normalize_bias=normalize_bias,
            rho=self.default_rho(dataset) if rho is None else rho, p=p, eta=self.eta if eta is None else eta,
            batched=batched, **base_kwargs,
        )


METHODS: dict[str, Method] = {
    "sgd": Method("sgd", "SGD", None, "none", color="#4d4d4d", dash="dash"),
    "sam": Method("sam", "SAM", "SAM", "none", {"cifar10": 0.05, "cifar100": 0.1}, color="#1f77b4"),
    "asam": Method("asam", "ASAM", "ASAM", "element", {"cifar10": 0.5, "cifar100": 1.0}, eta=0.01, color="#ff7f0e"),
}


def method(key_or_title: str) -> Method:
    """The registry entry named by its key ("asam") or title ("ASAM"); ValueError naming the choices."""
    for entry in METHODS.values():
        if key_or_title in (entry.key, entry.title):
            return entry
    raise ValueError(f"unknown method {key_or_title!r}; choose one of {', '.join(METHODS)}")
