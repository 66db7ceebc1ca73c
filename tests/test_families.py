"""Model families: one entry each (espressivo.families), reached by every command through the registry alone."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from espressivo.cli import main
from espressivo.errors import EspressivoError
from espressivo.families import FAMILIES, family, of_kind, register
from espressivo.features.slots import render_tokenizer, slot_sizes
from espressivo.io import read_midi, read_score
from espressivo.models import build_model
from espressivo.models.checkpoint import load_pretrained, save_checkpoint
from espressivo.registry import Registry
from espressivo.render import RenderOptions, render
from espressivo.train.tasks import TASKS
from tests.conftest import EXAMPLES, small_pairs

TOK = render_tokenizer()


def test_every_entry_names_parts_that_exist():
    for entry in FAMILIES.values():
        assert hasattr(entry.config_class, "from_name") and callable(entry.model_class)
        assert entry.tasks and all(task in TASKS for task in entry.tasks)
        assert len(set(entry.feature_names)) == len(entry.feature_names)
        for part in ("render", "prime", "card"):
            assert getattr(entry, part) == "" or callable(entry.part(part))
        assert entry.kind != "renderer" or callable(entry.part("render"))
    assert {f.name for f in of_kind("renderer")} == {"notewise", "cvrnn", "phrase"}
    assert {f.name for f in of_kind("language")} == {"perfrnn", "transformer"}
    assert family("renderer") is family("notewise")  # older checkpoints' model_type


def test_unknown_names_are_one_line():
    with pytest.raises(EspressivoError, match=r"unknown model type 'nope' \(available: perfrnn, transformer"):
        build_model("nope", "tiny")
    with pytest.raises(EspressivoError, match="unknown task 'x'"):
        TASKS["x"]
    registry = Registry("colour")
    registry.register("red")(1)
    with pytest.raises(ValueError, match="twice"):
        registry.add("red", 2)


@pytest.mark.parametrize("name", [f.name for f in of_kind("renderer")])
def test_a_model_built_from_every_preset_renders(name, tmp_path):
    """Sizes come from the feature set: no preset needs a feature count passed by hand."""
    import torch

    entry = family(name)
    score = read_score(EXAMPLES / "etude.musicxml")
    score = type(score)(score.notes[:24], score.time_signatures, score.key_signatures, score.tempo_markings)
    settings = {"slot_sizes": slot_sizes(TOK)} if "slot_sizes" in entry.config_class.__dataclass_fields__ else {}
    for preset in entry.config_class.PRESETS:
        torch.manual_seed(0)
        folder = save_checkpoint(tmp_path / preset, build_model(name, preset, **settings).eval(), name, TOK)
        pretrained = load_pretrained(folder)
        out = render(pretrained, score, RenderOptions.of(seed=1))[0].performance
        assert len(out) == 24 and np.isfinite(out.notes["onset_sec"]).all(), (name, preset)


def test_a_checkpoint_of_other_features_is_refused_in_one_line(tmp_path):
    folder = save_checkpoint(tmp_path / "p", build_model("phrase", "tiny", slot_sizes=slot_sizes(TOK)), "phrase", TOK)
    config = json.loads((folder / "config.json").read_text())
    assert config["features"] == list(family("phrase").feature_names)
    config["features"][8], config["features"][9] = config["features"][9], config["features"][8]  # same shapes
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(EspressivoError, match="column 8: 'is_minor' there, 'dynamic' here"):
        load_pretrained(folder)
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(tmp_path / "o.mid"), "--model", str(folder)])
    assert code == 2


@pytest.fixture
def loudness_family():
    from tests.dummy_family import FAMILY

    register(FAMILY)
    yield FAMILY
    FAMILIES.remove(FAMILY.name)


def test_a_new_family_trains_renders_and_evaluates_through_the_commands(
    loudness_family, asap_root, tmp_path, capsys
):  # fmt: skip
    """One file (tests/dummy_family.py) and one registration: `train`, `render` and `evaluate render` reach it."""
    pairs = small_pairs(tmp_path / "pairs", asap_root, 2)
    run = tmp_path / "run"
    (tmp_path / "loud.yaml").write_text(f"data: {pairs}\nout: {run}\nmodel_type: loudness\nmodel: tiny\n"
                                        "seq_len: 64\nbatch_size: 2\nmax_steps: 30\nlr: 0.1\nwarmup_steps: 0\n"
                                        "eval_every: 30\neval_windows: 2\nsave_every: 30\nthreads: 1\n")  # fmt: skip
    assert main(["train", str(tmp_path / "loud.yaml")]) == 0
    pretrained = load_pretrained(run / "best")
    assert pretrained.model_type == "loudness" and pretrained.config["train"]["task"] in ("auto", "phrase")
    assert float(pretrained.model.level.detach()) != 0.0  # it learned the pianists' loudness
    out = tmp_path / "out.mid"
    assert main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(run / "best")]) == 0
    velocities = read_midi(out).notes["velocity"]
    assert len(velocities) == 84 and len(set(velocities.tolist())) == 1
    code = main(["render", str(EXAMPLES / "etude.musicxml"), "-o", str(out), "--model", str(run / "best"),
                 "--expressiveness", "2"])  # fmt: skip
    assert code == 2 and "loudness renderer does not use --expressiveness" in capsys.readouterr().err
    report, test_pairs = tmp_path / "r.json", tmp_path / "test-pairs"
    shutil.copytree(pairs, test_pairs)  # the same (n)ASAP test performances, under their own split's name
    index = json.loads((test_pairs / "pairs.json").read_text())
    index["entries"] = [e | {"split": "test"} for e in index["entries"]]
    (test_pairs / "pairs.json").write_text(json.dumps(index))
    assert main(["evaluate", "render", "--model", str(run / "best"), "--pairs", str(test_pairs), "--root",
                 str(asap_root.parent), "--max-pieces", "1", "--json", str(report)]) == 0  # fmt: skip
    systems = json.loads(report.read_text())["systems"]
    assert systems[str(run / "best")]["per_note"]["velocity"]["r"] == 0.0  # one loudness: no correlation
