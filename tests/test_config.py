"""Run configs: defaults, the experiments/ files, and one test per error class."""

import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from jaxsel._errors import ConfigError
from jaxsel.cli._main import main
from jaxsel.pipeline import (
    Config,
    check_data_paths,
    config_from_dict,
    defaults_toml,
    demo_config,
    demo_toml,
    load_config,
    parse_override,
    run_pipeline,
    to_toml,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_defaults_round_trip_through_toml():
    cfg = Config()
    assert config_from_dict(tomllib.loads(to_toml(cfg))) == cfg
    text = defaults_toml()  # documented: every key carries a comment
    assert "n_neurons = 300  # neurons in the population" in text
    assert "[data.twin]" in text and "[select]" in text
    assert config_from_dict({}) == Config()  # an empty file is a valid config


def test_demo_file_is_the_embedded_demo_config():
    assert (EXPERIMENTS / "demo_twin.toml").read_text() == demo_toml()
    assert load_config(EXPERIMENTS / "demo_twin.toml") == demo_config()


@pytest.mark.parametrize(
    "name", ["demo_twin", "lurz2020", "allen_visam", "per_neuron_pyramid", "sweep_lr"]
)
def test_every_experiment_config_validates(name):
    cfg = load_config(EXPERIMENTS / f"{name}.toml")
    assert cfg.run.name


def test_unknown_key_names_the_key_and_a_close_valid_key():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"train": {"model": ["ln"]}})
    assert "unknown key 'train.model'" in str(e.value)
    assert "did you mean 'models'" in str(e.value)
    with pytest.raises(ConfigError, match=r"'data\.twin\.n_neuron'.*did you mean 'n_neurons'"):
        config_from_dict({"data": {"twin": {"n_neuron": 10}}})
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*did you mean 'train'"):
        config_from_dict({"trian": {}})
    with pytest.raises(ConfigError, match=r"'mei\.overrides\.step'.*did you mean 'steps'"):
        config_from_dict({"mei": {"overrides": {"step": 5}}})
    with pytest.raises(ConfigError, match=r"'train\.models\[0\]'.*did you mean 'small'"):
        config_from_dict({"train": {"models": ["smal"]}})


def test_wrong_type_names_the_key_the_expected_type_and_the_value():
    with pytest.raises(ConfigError) as e:
        config_from_dict({"data": {"twin": {"n_train": "lots"}}})
    msg = str(e.value)
    assert "data.twin.n_train" in msg and "integer" in msg and "'lots'" in msg
    with pytest.raises(ConfigError, match=r"'run\.seed' must be integer, got float 1\.5"):
        config_from_dict({"run": {"seed": 1.5}})
    with pytest.raises(ConfigError, match=r"'data\.window' must be array of 2"):
        config_from_dict({"data": {"window": [0.1]}})
    with pytest.raises(ConfigError, match=r"'train\.overrides\.max_epochs' must be integer"):
        config_from_dict({"train": {"overrides": {"max_epochs": "3"}}})
    with pytest.raises(ConfigError, match=r"'report\.pdf' must be boolean"):
        config_from_dict({"report": {"pdf": 1}})
    with pytest.raises(ConfigError, match=r"'data\.source'.*did you mean 'static'"):
        config_from_dict({"data": {"source": "statik"}})


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname = 'x'\n")
    with pytest.raises(ConfigError, match=re.escape("bad.toml: not valid TOML")):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    typo = tmp_path / "typo.toml"
    typo.write_text("[mei]\nrecipie = 'norm'\n")
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key 'mei\.recipie'.*'recipe'"):
        load_config(typo)


def test_missing_data_path_is_a_clear_error(tmp_path, capsys):
    cfg = load_config(
        EXPERIMENTS / "lurz2020.toml",
        overrides={"data.path": str(tmp_path / "nowhere"), "run.out": str(tmp_path / "run")},
    )
    with pytest.raises(ConfigError) as e:
        check_data_paths(cfg)
    msg = str(e.value)
    assert "data.path" in msg and "nowhere" in msg and "does not exist" in msg
    assert "where to get it" in msg  # the config's hint is shown
    with pytest.raises(ConfigError, match=re.escape("data.path")):
        run_pipeline(cfg, echo=False)
    assert not (tmp_path / "run").exists()  # nothing written
    # the CLI reports it and exits with 2
    rc = main(
        [
            "run",
            str(EXPERIMENTS / "allen_visam.toml"),
            "--out",
            str(tmp_path / "r2"),
            "--set",
            f"data.path='{tmp_path / 'x.nwb'}'",
        ]
    )
    assert rc == 2
    assert "data.path" in capsys.readouterr().err
    cfg = config_from_dict({"data": {"source": "allen", "path": str(tmp_path)}})
    with pytest.raises(ConfigError, match=re.escape("'data.images' is empty")):
        check_data_paths(cfg)


def test_unwritable_output_dir_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = demo_config(overrides={"run.out": str(blocker / "run")})
    with pytest.raises(ConfigError) as e:
        run_pipeline(cfg, echo=False)
    msg = str(e.value)
    assert "run.out" in msg and "cannot write the run folder" in msg and "--out" in msg
    assert main(["demo", "--out", str(blocker / "run")]) == 2
    assert "cannot write the run folder" in capsys.readouterr().err


def test_overrides_parse_toml_values():
    assert parse_override("train.overrides.lr=0.01") == ("train.overrides.lr", 0.01)
    assert parse_override("run.name=abc") == ("run.name", "abc")
    assert parse_override("train.models=['ln']") == ("train.models", ["ln"])
    with pytest.raises(ConfigError, match=re.escape("section.key=value")):
        parse_override("train.lr")
    cfg = demo_config(overrides={"data.twin.n_neurons": 7})
    assert cfg.data.twin.n_neurons == 7


def test_sweep_config_is_validated():
    with pytest.raises(ConfigError, match=r"'sweep.model'.*did you mean 'small'"):
        config_from_dict({"sweep": {"model": "smal"}})
    with pytest.raises(ConfigError, match=r"'sweep.parameter.lrr'.*did you mean 'lr'"):
        config_from_dict({"sweep": {"parameter": "lrr"}})


def test_data_option_keys_are_accepted_and_documented():
    d = config_from_dict(
        {
            "data": {
                "crop": "none",
                "split_seed": 7,
                "qc": {"snr": 1.5, "isi_violations": ["<=", 0.2], "quality": "== good"},
                "stimulus": "natural_scenes_b",
                "final_test": "drop",
                "require_repeats": False,
            }
        }
    ).data
    assert (d.crop, d.split_seed, d.stimulus, d.final_test, d.require_repeats) == (
        "none",
        7,
        "natural_scenes_b",
        "drop",
        False,
    )
    assert d.qc["isi_violations"] == ["<=", 0.2]
    default = Config().data
    assert (default.crop, default.split_seed, default.final_test) == ("center", 0, "merge")
    assert default.qc == {"isi_violations": 0.5, "amplitude_cutoff": 0.1, "presence_ratio": 0.9}
    text = defaults_toml()
    for key in ("crop", "split_seed", "qc", "stimulus", "final_test", "require_repeats"):
        assert re.search(rf"^{key} = .*#", text, re.M), key
    assert config_from_dict(tomllib.loads(to_toml(config_from_dict({"data": {"qc": {}}})))) == (
        config_from_dict({"data": {"qc": {}}})
    )


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"crop": "middle"}, r"'data\.crop' must be one of \['center', 'none'\], got 'middle'"),
        ({"final_test": "keep"}, r"'data\.final_test' must be one of \['merge', 'drop', 'error'\]"),
        ({"stimulus": ""}, r"'data\.stimulus' must name a stimulus table"),
        ({"qc": {"my_metric": 0.2}}, r"'data\.qc\.my_metric'.*direction is unknown"),
        ({"qc": {"snr": "about 2"}}, r"'data\.qc\.snr'.*op in"),
        ({"qc": 0.5}, r"'data\.qc' must be table"),
        ({"split_seed": 1.5}, r"'data\.split_seed' must be integer"),
        ({"require_repeats": "no"}, r"'data\.require_repeats' must be boolean"),
    ],
)
def test_bad_data_option_names_the_key(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict({"data": data})


def test_static_run_records_final_test_in_summary_metrics_and_report(tmp_path):
    import json

    from jaxsel.data import make_dataset, save_static

    rng = np.random.default_rng(0)
    ids = np.concatenate([np.arange(20), np.repeat([100, 101], 4), np.repeat([102], 4)])
    tier = np.array(["train"] * 16 + ["validation"] * 4 + ["test"] * 12)
    ds = make_dataset(
        rng.normal(size=(len(ids), 8, 12)),
        rng.poisson(2.0, size=(len(ids), 4)),
        image_id=ids,
        tier=tier,
    )
    path = save_static(ds, tmp_path / "static")
    tiers = np.load(path / "meta/trials/tiers.npy").astype("<U10")
    tiers[ids == 102] = "final_test"
    np.save(path / "meta/trials/tiers.npy", tiers)
    cfg = config_from_dict(
        {
            "run": {"out": str(tmp_path / "run"), "stages": ["data", "report"], "progress": False},
            "data": {"source": "static", "path": str(path), "final_test": "drop"},
        }
    )
    run_pipeline(cfg, echo=False)
    summary = json.loads((tmp_path / "run/data/summary.json").read_text())
    assert summary["final_test"] == "drop" and summary["n_final_test"] == 4
    assert summary["n_trials"] == 28
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["data_final_test"] == "drop"
    report = (tmp_path / "run/report.html").read_text()
    assert re.search(r"<td>final_test</td>\s*<td>drop</td>", report)
