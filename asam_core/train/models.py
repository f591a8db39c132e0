"""CIFAR networks: ResNet-20/32/56, WRN-16-8 / 28-2 / 28-10, VGG-16/19 with BatchNorm, and a
small fast CNN for CPU and classroom runs.  All take (B, 3, 32, 32) and return logits.

- ResNet-(6n+2) (He et al. 2016, Section 4.2): 3 stages of n basic blocks, 16/32/64 channels;
  shortcuts that change shape subsample and zero-pad channels (option A, 0.27M parameters for
  ResNet-20).
- WRN-d-k (Zagoruyko & Komodakis 2016): pre-activation blocks, (d-4)/6 per stage, widths
  16k/32k/64k, no dropout.
- VGG-16/19 with BatchNorm after every convolution and one linear classifier on 512 features.
- small_cnn: 4 conv-BN-ReLU-maxpool layers (32-64-128-256 channels), global average pooling,
  linear classifier; 0.39M parameters, about 0.15 s per batch of 128 (forward + backward) on
  2 CPU cores.
"""
from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from asam_core.train.model_names import MODEL_NAMES, ModelName


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class _ResNetBlock(nn.Module):
    """Post-activation basic block: relu(bn(conv(relu(bn(conv x)))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = c_out - c_in
        self.stride = stride

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _WideBlock(nn.Module):
    """Pre-activation wide block; a 1x1 convolution on the shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.project = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.project is None else self.project(act))


def _stages(block: Callable[[int, int, int], nn.Module], c_in: int, widths: list[int], depth: int) -> nn.Sequential:
    layers = []
    for stage, width in enumerate(widths):
        for i in range(depth):
            layers.append(block(c_in, width, 2 if stage > 0 and i == 0 else 1))
            c_in = width
    return nn.Sequential(*layers)


def _init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def resnet(depth: int, num_classes: int) -> nn.Module:
    """CIFAR ResNet of depth 6n + 2."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    return _init(nn.Sequential(
        *_conv_bn_relu(3, 16),
        _stages(_ResNetBlock, 16, [16, 32, 64], (depth - 2) // 6),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    ))


def wide_resnet(depth: int, width: int, num_classes: int) -> nn.Module:
    """WRN-depth-width with depth = 6n + 4."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    widths = [16 * width, 32 * width, 64 * width]
    return _init(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        _stages(_WideBlock, 16, widths, (depth - 4) // 6),
        nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes),
    ))


_VGG_STAGES = {16: [2, 2, 3, 3, 3], 19: [2, 2, 4, 4, 4]}


def vgg_bn(depth: int, num_classes: int) -> nn.Module:
    """VGG-16/19 with BatchNorm: five stages (64-128-256-512-512 channels), each ending in a max-pool."""
    layers: list[nn.Module] = []
    c_in = 3
    for width, convs in zip([64, 128, 256, 512, 512], _VGG_STAGES[depth]):
        for _ in range(convs):
            layers += _conv_bn_relu(c_in, width)
            c_in = width
        layers.append(nn.MaxPool2d(2))
    return _init(nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, num_classes)))


def small_cnn(num_classes: int) -> nn.Module:
    """Four conv-BN-ReLU layers, each halving the resolution with a max-pool, global average
    pooling, one linear layer."""
    layers: list[nn.Module] = []
    for c_in, c_out in [(3, 32), (32, 64), (64, 128), (128, 256)]:
        layers += [*_conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
    return _init(nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes)))


_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "small_cnn": small_cnn,
    "resnet20": lambda k: resnet(20, k),
    "resnet32": lambda k: resnet(32, k),
    "resnet56": lambda k: resnet(56, k),
    "wrn16_8": lambda k: wide_resnet(16, 8, k),
    "wrn28_2": lambda k: wide_resnet(28, 2, k),
    "wrn28_10": lambda k: wide_resnet(28, 10, k),
    "vgg16_bn": lambda k: vgg_bn(16, k),
    "vgg19_bn": lambda k: vgg_bn(19, k),
}


def build_model(name: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """The network called ``name`` (one of MODEL_NAMES) with ``num_classes`` outputs; ``dropout`` > 0
    puts nn.Dropout(dropout) before the final linear layer (the "dropout" hyper-parameter of ASAM
    Table 1 / Jiang et al. 2019; no parameters, inactive in eval mode)."""
    if name not in _BUILDERS:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
    model = _BUILDERS[name](num_classes)
    return nn.Sequential(*model[:-1], nn.Dropout(dropout), model[-1]) if dropout > 0 else model
