"""The names of the CIFAR networks (``asam_core.train.models`` builds them); no torch here, so
RunConfig validates without importing it."""
from __future__ import annotations

from typing import Literal, get_args

ModelName = Literal[
    "small_cnn", "resnet20", "resnet32", "resnet56", "wrn16_8", "wrn28_2", "wrn28_10", "vgg16_bn", "vgg19_bn"
]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
