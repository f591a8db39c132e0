"""CIFAR networks (published parameter counts) and the trajectory plane (Li et al. 2018)."""
from __future__ import annotations

import pytest
import torch

from asam_core.train.models import MODEL_NAMES, build_model
from asam_core.sharpness import filter_normalized_directions
from asam_core.train.trajectory import TrajectoryPlane, plane_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, millions", [
    ("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85),  # He et al. 2016, Table 6
    ("wrn16_8", 11.0), ("wrn28_10", 36.5),                        # Zagoruyko & Komodakis 2016, Table 4
    ("wrn28_2", 1.5), ("vgg16_bn", 14.7), ("vgg19_bn", 20.0),
])
def test_parameter_counts_match_the_published_ones(name, millions):
    assert n_params(build_model(name, 10)) / 1e6 == pytest.approx(millions, abs=0.01 if millions < 1 else 0.1)


@pytest.mark.parametrize("name", ["small_cnn", "resnet20", "wrn16_8", "vgg16_bn"])
@pytest.mark.parametrize("classes", [10, 100])
def test_logits_for_every_class(name, classes):
    model = build_model(name, classes).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, classes)


def test_every_name_builds_and_unknown_names_are_refused():
    assert len(MODEL_NAMES) == 9
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("resnet18", 10)


@pytest.mark.parametrize("name", ["small_cnn", "resnet20"])
def test_dropout_sits_before_the_classifier_and_changes_neither_initialization_nor_eval_outputs(name):
    torch.manual_seed(3)
    plain = build_model(name, 10)
    torch.manual_seed(3)
    dropped = build_model(name, 10, dropout=0.5)
    assert isinstance(dropped[-2], torch.nn.Dropout) and dropped[-2].p == 0.5
    assert isinstance(dropped[-1], torch.nn.Linear)
    for a, b in zip(plain.parameters(), dropped.parameters(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(dropped.eval()(x), plain.eval()(x), rtol=0, atol=0)
    dropped.train()
    assert not torch.equal(dropped(x), dropped(x)), "in training, dropout draws a new mask per call"


def test_directions_are_filter_normalized_and_skip_biases_and_batchnorm():
    model = build_model("small_cnn", 10)
    params = list(model.parameters())
    first, second = filter_normalized_directions(params, 2, torch.Generator().manual_seed(0))
    for w, d, other in zip(params, first, second):
        assert d.shape == w.shape
        if w.dim() < 2:
            assert torch.count_nonzero(d) == 0
        else:
            torch.testing.assert_close(d.flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1))
            assert not torch.equal(d, other), "each direction is its own draw"


def test_plane_coordinates_recover_points_of_the_plane_and_origin_is_zero():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10)
    plane = TrajectoryPlane(model.parameters(), plane_seed("small_cnn", 0))
    assert plane.coordinates(model.parameters()) == (0.0, 0.0)
    with torch.no_grad():
        offset = 0
        for w in model.parameters():
            step = plane.directions[:, offset:offset + w.numel()].view(2, *w.shape)
            w += 0.3 * step[0] - 0.7 * step[1]
            offset += w.numel()
    assert plane.coordinates(model.parameters()) == pytest.approx((0.3, -0.7), abs=1e-4)


def test_same_model_and_seed_share_one_plane_and_other_seeds_do_not():
    def plane(seed):
        torch.manual_seed(seed)
        return TrajectoryPlane(build_model("resnet20", 10).parameters(), plane_seed("resnet20", seed))

    a, b, c = plane(1), plane(1), plane(2)
    assert torch.equal(a.origin, b.origin) and torch.equal(a.directions, b.directions)
    assert not torch.equal(a.directions, c.directions)
