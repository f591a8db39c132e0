"""Sweeps (asam_core.runs.sweep): grid expansion in order and size, validation that names the grid entry,
and the paper presets (asam_core.runs.study_presets) expanding to what their descriptions say."""
from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from asam_core.runs.study_presets import STUDY_PRESETS, find_study_preset
from asam_core.runs.sweep import MAX_RUNS, Sweep
from asam_core.train.config import RunConfig, format_validation_error


def problems(**sweep) -> str:
    with pytest.raises(ValidationError) as err:
        Sweep(name="s", **sweep)
    return format_validation_error(err.value)


@settings(max_examples=40, deadline=None)
@given(rhos=st.lists(st.sampled_from([0.01, 0.05, 0.1, 0.5, 1.0]), min_size=1, max_size=3, unique=True),
       lrs=st.lists(st.sampled_from([0.01, 0.1, 0.2]), min_size=1, max_size=3, unique=True),
       variant_ps=st.lists(st.sampled_from([2.0, 3.0, math.inf]), min_size=1, max_size=2, unique=True),
       seeds=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True))
def test_runs_are_variants_times_their_lists_times_the_grid_times_seeds_in_order(rhos, lrs, variant_ps, seeds):
    sweep = Sweep(name="s", base={"epochs": 3, "model": "small_cnn"},
                  variants=[{"optimizer": "sgd"}, {"optimizer": "asam", "p": variant_ps}],
                  grid={"rho": rhos, "lr": lrs}, seeds=seeds)
    expected = [
        RunConfig(epochs=3, model="small_cnn", **variant, rho=rho, lr=lr, seed=seed)
        for variant in [{"optimizer": "sgd"}] + [{"optimizer": "asam", "p": p} for p in variant_ps]
        for rho, lr in itertools.product(rhos, lrs) for seed in seeds
    ]
    assert sweep.configs() == expected
    assert len(sweep.configs()) == (1 + len(variant_ps)) * len(rhos) * len(lrs) * len(seeds)
    swept = set(sweep.swept_options())
    assert {"optimizer"} <= swept and ({"rho"} <= swept) == (len(rhos) > 1) and "seed" not in swept


@pytest.mark.parametrize("sweep, line", [
    (dict(grid={"rho": [0.1, -1.0]}), "grid.rho[1]: must be >= 0 (got -1.0)"),
    (dict(variants=[{}, {"p": [2, 1]}]), "variants[1].p[1]: must be > 1 (got 1)"),
    (dict(base={"epochs": 0}), "base.epochs: must be >= 1 (got 0)"),
    (dict(grid={"learning_rate": [0.1]}), "grid.learning_rate: is not an option"),
    (dict(grid={"rho": []}), "grid.rho: give at least one value"),
    (dict(grid={"seed": [1, 2]}), "grid.seed: give the seeds in seeds"),
    (dict(seeds=[1, 1]), "seeds: give 1 to 20 different seeds"),
    (dict(x="nope"), "x: is not an option"),
    (dict(base={"m": 64}, grid={"batch_size": [128, 32]}), "base.m: must be <= batch_size (32)"),
    (dict(grid={"rho": [0.1] * 50, "lr": [0.1] * 50}), f"at most {MAX_RUNS}"),
])
def test_a_bad_value_names_its_place_in_the_sweep(sweep, line):
    text = problems(**sweep)
    assert line in text and "\n" not in text and "Value error" not in text


def test_presets_expand_to_valid_runs_of_both_budgets():
    titles = list(STUDY_PRESETS)
    assert {title.rsplit("· ", 1)[1] for title in titles} == {"classroom", "paper"} and len(titles) == 8
    for title, sweep in STUDY_PRESETS.items():
        configs = sweep.configs()
        assert configs and len({c.model_dump_json() for c in configs}) == len(configs), title
        if title.endswith("classroom"):
            assert all(c.model == "small_cnn" and c.subset_per_class == 100 for c in configs)
        else:
            assert all(c.subset_per_class is None and c.epochs == 200 for c in configs)
    table1 = STUDY_PRESETS[find_study_preset("sharpness-vs-generalization-gap-classroom")]
    assert table1.figure == "correlation" and set(table1.grid) == {"batch_size", "lr", "weight_decay", "dropout"}
    assert {c.optimizer for c in table1.configs()} == {"sgd"} and len(table1.configs()) == 16
    rho = STUDY_PRESETS[find_study_preset("rho sweep classroom")]
    labels = {c.label for c in rho.configs()}
    assert len(labels) == 5 and any(c.p == math.inf for c in rho.configs())
    assert any(c.normalize_bias for c in rho.configs()) and any(c.normalization == "filter" for c in rho.configs())
    with pytest.raises(KeyError, match="unknown study preset"):
        find_study_preset("nope")
