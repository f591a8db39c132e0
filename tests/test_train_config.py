"""RunConfig: the paper's recipe as defaults, readable errors, JSON round-trip, honest presets."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from asam_core.train.config import (
    PRESET_DESCRIPTIONS,
    PRESETS,
    RunConfig,
    find_preset,
    format_validation_error,
)
from asam_core.train.models import MODEL_NAMES


def test_defaults_are_the_papers_recipe():
    c = RunConfig()
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.label_smoothing, c.epochs) == (128, 0.1, 0.9, 5e-4, 0.1, 200)
    assert (c.eta, c.p, c.normalize_bias, c.m) == (0.01, 2.0, False, None)


@pytest.mark.parametrize("dataset, optimizer, rho, normalization", [
    ("cifar10", "sam", 0.05, "none"), ("cifar10", "asam", 0.5, "element"),
    ("cifar100", "sam", 0.1, "none"), ("cifar100", "asam", 1.0, "element"),
])
def test_unset_rho_and_normalization_take_the_papers_values(dataset, optimizer, rho, normalization):
    c = RunConfig(dataset=dataset, optimizer=optimizer)
    assert (c.rho, c.normalization) == (rho, normalization)
    assert RunConfig(dataset=dataset, optimizer=optimizer, rho=0.2).rho == 0.2


def errors_of(**options) -> list[str]:
    with pytest.raises(ValidationError) as info:
        RunConfig(**options)
    return format_validation_error(info.value).splitlines()


@pytest.mark.parametrize("options, line", [
    ({"rho": -1}, "rho: must be >= 0 (got -1)"),
    ({"label_noise": 1.0}, "label_noise: must be < 1 (got 1.0)"),
    ({"p": 1}, "p: must be > 1 (got 1)"),
    ({"batch_size": 1}, "batch_size: must be >= 2 (got 1)"),
    ({"lr": 0}, "lr: must be > 0 (got 0)"),
    ({"optimizer": "adam"}, "optimizer: must be one of 'sgd', 'sam' or 'asam' (got 'adam')"),
    ({"normalization": "layer"}, "normalization: must be one of 'none', 'element' or 'filter' (got 'layer')"),
    ({"epochs": "ten"}, "epochs: must be a whole number (got 'ten')"),
    ({"eta": float("nan")}, "eta: must be a finite number (got nan)"),
    ({"rhoo": 0.1}, "rhoo: is not an option (see RunConfig for the allowed ones) (got 0.1)"),
    ({"m": 256}, "m: must be <= batch_size (128) (got 256)"),
    ({"nesterov": True, "momentum": 0}, "nesterov: needs momentum > 0 (got momentum 0)"),
])
def test_invalid_values_give_one_readable_line_naming_field_and_range(options, line):
    assert errors_of(**options) == [line]


@pytest.mark.parametrize("options, line", [
    ({"lr": 11}, "lr: must be <= 10 (got 11)"),
    ({"rho": 1e6}, "rho: must be <= 10 (got 1000000.0)"),
    ({"eta": 2}, "eta: must be <= 1 (got 2)"),
    ({"weight_decay": 3}, "weight_decay: must be <= 1 (got 3)"),
    ({"data_dir": "  "}, "data_dir: must not be blank (got '  ')"),
    ({"data_dir": "a\0b"}, "data_dir: must not contain a NUL byte (got 'a\\x00b')"),
])
def test_values_beyond_what_a_user_could_mean_are_rejected(options, line):
    assert errors_of(**options) == [line]


def test_an_error_echoes_at_most_80_characters_of_a_bad_value():
    (line,) = errors_of(data_dir="d" * 5000)
    assert line.startswith("data_dir: must have at most 1024 characters (got 'ddd") and line.endswith("...)")
    assert len(line.split("(got ", 1)[1]) <= 81
    (line,) = errors_of(label="x" * 101)
    assert line.startswith("label: must have at most 100 characters")


def test_every_bad_field_is_reported_at_once():
    lines = errors_of(rho=-1, epochs=0, model="resnet18")
    assert [line.split(":")[0] for line in lines] == ["model", "rho", "epochs"]


configs = st.builds(
    RunConfig,
    dataset=st.sampled_from(["cifar10", "cifar100"]),
    model=st.sampled_from(MODEL_NAMES),
    optimizer=st.sampled_from(["sgd", "sam", "asam"]),
    rho=st.none() | st.floats(0, 5),
    p=st.sampled_from([2.0, math.inf]) | st.floats(1.01, 50),
    normalization=st.sampled_from([None, "none", "element", "filter"]),
    label_noise=st.floats(0, 0.99),
    subset_per_class=st.none() | st.integers(1, 5000),
    m=st.none() | st.integers(1, 128),
    seed=st.integers(0, 2**63 - 1),
    label=st.text(max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(config=configs)
def test_json_round_trip_is_exact(config):
    assert RunConfig.model_validate_json(config.model_dump_json()) == config
    assert RunConfig.model_validate(config.options()) == config


def test_options_rederive_rho_for_another_dataset():
    sam = RunConfig(optimizer="sam")
    assert "rho" not in sam.options()
    assert RunConfig.model_validate({**sam.options(), "dataset": "cifar100"}).rho == 0.1


def test_presets_are_sgd_sam_asam_triples_sharing_data_model_and_seed():
    for title, triple in PRESETS.items():
        assert [c.optimizer for c in triple] == ["sgd", "sam", "asam"], title
        shared = [c.model_dump(exclude={"label", "optimizer", "rho", "normalization"}) for c in triple]
        assert shared[0] == shared[1] == shared[2], title
        assert [c.rho for c in triple[1:]] == [0.05, 0.5] and triple[2].eta == 0.01
        description = PRESET_DESCRIPTIONS[title]
        assert ("Cannot show" in description) != ("needs a GPU" in description.replace("Needs", "needs")), title


def test_presets_match_their_titles():
    quick = PRESETS[find_preset("classroom-quick")][0]
    assert quick.model == "small_cnn" and quick.subset_per_class is not None and quick.epochs <= 10
    table2 = PRESETS[find_preset("Paper Table 2: ResNet-20 CIFAR-10")][0]
    assert (table2.model, table2.dataset, table2.epochs, table2.label_noise) == ("resnet20", "cifar10", 200, 0.0)
    table6 = PRESETS[find_preset("paper table 6 label noise 40")][0]
    assert (table6.label_noise, table6.epochs, table6.subset_per_class) == (0.4, 200, None)
    with pytest.raises(KeyError, match="unknown preset"):
        find_preset("imagenet")


def test_with_seeds_gives_each_config_once_per_seed_and_validates_them():
    from asam_core.train.config import MAX_SEEDS, with_seeds

    sgd, asam = RunConfig(optimizer="sgd", label="x"), RunConfig(optimizer="asam", lr=0.05)
    runs = with_seeds([sgd, asam], [3, 4])
    assert [(r.optimizer, r.seed) for r in runs] == [("sgd", 3), ("sgd", 4), ("asam", 3), ("asam", 4)]
    assert runs[3].model_dump(exclude={"seed"}) == asam.model_dump(exclude={"seed"})
    for bad in ([], [1, 1], list(range(MAX_SEEDS + 1)), [-2]):
        with pytest.raises(ValueError, match="seed"):
            with_seeds([sgd], bad)
