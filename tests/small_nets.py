"""The small conv net and batches the optimizer tests share."""
from __future__ import annotations

import torch
from torch import nn


def small_net(seed: int = 0) -> nn.Module:
    """Conv -> BatchNorm -> ReLU -> pool -> Linear on 3x6x6 inputs, 3 classes; weights from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    )


def batch(seed: int = 0, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]
