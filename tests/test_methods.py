"""asam_core.methods: the one registry of training methods, and the proof that adding a method is one entry."""
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from asam_core import ASAM, SAM
from asam_core.methods import METHODS, method
from asam_core.train.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_method_has_its_own_title_and_colour_and_round_trips_by_key_or_title():
    assert len({m.title for m in METHODS.values()}) == len({m.color for m in METHODS.values()}) == len(METHODS)
    for key, entry in METHODS.items():
        assert entry.key == key and method(key) is entry and method(entry.title) is entry
    with pytest.raises(ValueError, match="sgd, sam, asam"):
        method("adam")


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("key", list(METHODS))
def test_run_config_defaults_and_choices_come_from_the_registry(key, dataset):
    config = RunConfig(optimizer=key, dataset=dataset)
    assert config.rho == METHODS[key].default_rho(dataset)
    assert config.normalization == METHODS[key].normalization
    assert typing.get_args(RunConfig.model_fields["optimizer"].annotation) == tuple(METHODS)


def test_build_gives_each_method_its_optimizer_and_defaults():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    sgd = METHODS["sgd"].build(model, lr=0.1)
    sam = METHODS["sam"].build(model, lr=0.1)
    asam = METHODS["asam"].build(model, lr=0.1, dataset="cifar100")
    assert type(sgd) is torch.optim.SGD and type(sam) is SAM and type(asam) is ASAM
    assert sam.param_groups[0]["rho"] == 0.05 and {g["normalization"] for g in sam.param_groups} == {"none"}
    assert asam.param_groups[0]["rho"] == 1.0 and asam.param_groups[0]["eta"] == 0.01
    assert {g["normalization"] for g in asam.param_groups} == {"element", "none"}, "biases stay unnormalized"


NEW_METHOD = textwrap.dedent('''
    import json, math, torch
    from torch import nn
    from asam_core.methods import METHODS, Method
    METHODS["asam_filter"] = Method("asam_filter", "ASAM (filter-wise)", "ASAM", "filter", {"cifar10": 0.2},
                                    eta=0.01, color="#2ca02c")
    from asam_core.runs.cli import build_parser
    from asam_core.train.config import RunConfig
    from asam_core.train.loop import build_optimizer
    from toy_problems.classification import ClassifierConfig, train_classifiers
    from toy_problems.losses import get_loss
    from toy_problems.simulate import SimulationConfig, simulate

    config = RunConfig(optimizer="asam_filter", model="small_cnn")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    opt = build_optimizer(config, model)
    kinds = {g["normalization"] for g in opt.param_groups}
    toy = simulate(get_loss("relu_product"), torch.tensor([[0.2, 0.05]], dtype=torch.float64),
                   SimulationConfig(methods=("sgd", "asam_filter"), steps=50, lr=0.005, rho=0.05, eta=0.01))
    run = train_classifiers(ClassifierConfig(optimizers=("SGD", "ASAM (filter-wise)"), n_train=40, n_test=40, steps=20,
                                             width=8, evals=2, snapshots=1, resolution=8))
    help_text = build_parser().format_help() + " ".join(
        a.help or "" for p in build_parser()._subparsers._group_actions[0].choices.values() for a in p._actions)
    print(json.dumps(dict(rho=config.rho, normalization=config.normalization, optimizer=type(opt).__name__,
                          kinds=sorted(kinds), toy_methods=list(toy.methods),
                          toy_moved=[float(v) for v in toy.summary()["moved"]],
                          classifier=list(run.final("test_acc")), in_cli_help="asam_filter" in help_text)))
''')


def test_adding_a_method_is_one_registry_entry():
    """A new method registered before anything else is imported is accepted by RunConfig and the CLI,
    built by the CIFAR loop, simulated on the toy loss and trained on the 2-D classifier toy."""
    out = subprocess.run([sys.executable, "-c", NEW_METHOD], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rho"] == 0.2 and got["normalization"] == "filter" and got["optimizer"] == "ASAM"
    assert got["kinds"] == ["filter", "none"]
    assert got["toy_methods"] == ["sgd", "asam_filter"] and all(v > 0 for v in got["toy_moved"])
    assert got["classifier"] == ["SGD", "ASAM (filter-wise)"]
    assert got["in_cli_help"]
