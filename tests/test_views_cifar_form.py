"""The CIFAR page's launch form: fields from RunConfig, values round-trip, the form and run ids in the URL."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from asam_core.train.config import PRESETS, RunConfig, format_validation_error
from views import cifar_form


def test_the_form_asks_for_every_field_with_its_allowed_range():
    specs = {s.name: s for s in cifar_form.form_fields()}
    assert list(specs) == list(RunConfig.model_fields)
    assert (specs["epochs"].kind, specs["epochs"].allowed) == ("int", "a whole number, >= 1, <= 10000")
    assert (specs["rho"].kind, specs["rho"].optional) == ("float", True)
    assert specs["rho"].allowed == ">= 0, <= 10, empty for the default"
    assert (specs["p"].kind, specs["p"].allowed) == ("text", "> 1, or inf")
    assert specs["optimizer"].options == ("sgd", "sam", "asam")
    assert specs["normalization"].options == (None, "none", "element", "filter")
    assert specs["augment"].kind == "checkbox"
    assert "learning rate" in specs["lr"].help.lower() and "> 0" in specs["lr"].help
    assert specs["subset_per_class"].label == "Training images per class", "words, not the field name"
    assert "`subset_per_class`" in specs["subset_per_class"].help and "--subset-per-class" in specs["subset_per_class"].help
    assert all(spec.label and spec.label != spec.name for spec in specs.values() if spec.name not in ("p", "m"))


configs = st.builds(
    RunConfig,
    optimizer=st.sampled_from(["sgd", "sam", "asam"]),
    dataset=st.sampled_from(["cifar10", "cifar100"]),
    rho=st.none() | st.floats(0, 5),
    p=st.sampled_from([2.0, 3.5, float("inf")]),
    normalization=st.sampled_from([None, "none", "element", "filter"]),
    label_noise=st.floats(0, 0.9),
    m=st.none() | st.integers(1, 128),
)


@given(configs)
def test_form_values_give_back_the_same_config(config):
    assert RunConfig.model_validate(cifar_form.form_values(config)) == config


def test_form_values_leave_paper_defaults_open_so_a_new_optimizer_gets_its_own():
    values = cifar_form.form_values(PRESETS[next(iter(PRESETS))][1])  # SAM
    assert (values["rho"], values["normalization"]) == (None, None)
    switched = RunConfig.model_validate({**values, "optimizer": "asam"})
    assert (switched.rho, switched.normalization) == (0.5, "element")
    assert cifar_form.form_values(RunConfig(optimizer="sam", rho=0.2))["rho"] == 0.2


def test_bad_form_values_name_each_field_and_its_range():
    values = {**cifar_form.form_values(RunConfig()), "epochs": 0, "rho": -1.0, "p": "one", "lr": None}
    with pytest.raises(ValidationError) as err:
        RunConfig.model_validate(values)
    lines = format_validation_error(err.value).splitlines()
    assert lines == ["rho: must be >= 0 (got -1.0)", "p: must be a number (got 'one')",
                     "epochs: must be >= 1 (got 0)", "lr: must be a number (got None)"]


@given(st.lists(st.integers(0, 30)), st.lists(st.text(alphabet="ab-, ", max_size=4)))
def test_parse_run_ids_keeps_known_ids_in_order_once_and_reports_the_rest(ids, junk):
    ids_out, rejected = cifar_form.parse_run_ids(",".join([str(i) for i in ids] + junk), list(range(10)))
    assert ids_out == list(dict.fromkeys(i for i in ids if i < 10))
    assert rejected == [str(i) for i in ids if i >= 10] + [t.strip() for j in junk for t in j.split(",") if t.strip()]



def test_parse_run_ids_rejects_non_ascii_digits():
    assert cifar_form.parse_run_ids("²,1,١", [1, 2]) == ([1], ["²", "١"])


def test_the_form_in_the_url_holds_only_what_differs_from_the_preset_and_comes_back():
    base = PRESETS["Classroom quick"][2]
    values = {**cifar_form.form_values(base), "epochs": 3, "rho": 0.2, "augment": False}
    query = cifar_form.form_to_url(values, base)
    assert query == {"cifar_f_epochs": "3", "cifar_f_rho": "0.2", "cifar_f_augment": "false"}
    restored, problems = cifar_form.form_from_url(query, base)
    assert problems == [] and restored == values


def test_bad_form_values_in_the_url_are_named_and_dropped():
    base = PRESETS["Classroom quick"][2]
    restored, problems = cifar_form.form_from_url({"cifar_f_epochs": "0", "cifar_f_lr": "1e400",
                                                   "cifar_f_model": "resnet20"}, base)
    assert problems == ["epochs: must be >= 1 (got '0')", "lr: must be a finite number (got '1e400')"]
    assert (restored["epochs"], restored["lr"], restored["model"]) == (base.epochs, base.lr, "resnet20")
