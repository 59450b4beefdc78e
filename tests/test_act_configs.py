"""Real-style ACT configs, one per model family of PaddleSlim's example directory (with their
reader, post-processing and script-owned sections): each lowers to a recipe that checks, and
where a test model fits, compiles. Plus the Global section and --set overrides."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from actc.act.load import load_config
from actc.act.lower import lower
from actc.cli.main import main
from actc.dsl.compiler import compile_source
from actc.errors import ActcError

CONFIGS = sorted((Path(__file__).parent / "act_configs").glob("*.yaml"))
FIXTURE = Path(__file__).parent / "fixtures" / "tfm_encoder"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_family_config_lowers_to_a_valid_recipe(path):
    low = lower(load_config(path))
    compile_source(low.text, f"{path} (lowered)")
    text = " ".join(str(n) for n in low.notes)
    assert "error" not in text


def test_script_sections_are_noted_and_near_misses_are_errors(tmp_path):
    cfg = load_config(Path(__file__).parent / "act_configs" / "ocr_det_qat.yaml")
    notes = [str(n) for n in cfg.notes]
    assert any("section 'Train' is not an ACT section" in n for n in notes)
    assert any("section 'PostProcess' (post-processing" in n for n in notes)
    bad = tmp_path / "bad.yaml"
    bad.write_text("QuantPsot:\n  algo: KL\n")
    with pytest.raises(ActcError, match=r"bad.yaml:1:1: error: unknown section 'QuantPsot' "
                                        r"\(did you mean 'QuantPost'\?\)"):
        load_config(bad)


@pytest.mark.parametrize("name, model, extra, floor", [
    ("image_classification_qat", "example", [], 98.0),
    ("auto_only_train_config", "example", [], 98.0),
    ("nlp_transformer_prune", str(FIXTURE), ["--data", str(FIXTURE / "train.npz")], 98.0),
])
def test_family_configs_compile_where_a_test_model_fits(tmp_path, capsys, name, model, extra,
                                                        floor):
    pytest.importorskip("paddle")
    path = Path(__file__).parent / "act_configs" / f"{name}.yaml"
    code = main(["compile", model, "--config", str(path), "-o", str(tmp_path / "o"), *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    acc = float(re.search(r"compressed (\d+\.\d+)%", cap.out).group(1))
    assert acc >= floor


def test_the_model_comes_from_global_and_set_overrides_the_config(tmp_path, capsys,
                                                                 example_dir):
    pytest.importorskip("paddle")
    config = tmp_path / "c.yaml"
    config.write_text(f"Global:\n  model_dir: {example_dir}\n  model_filename: model.pdmodel\n"
                      "  params_filename: model.pdiparams\n  input_shapes: [[-1, 1, 8, 8]]\n"
                      "QuantPost:\n  algo: hist\n")
    out = tmp_path / "o"
    code = main(["compile", "--config", str(config), "-o", str(out),
                 "--set", "QuantPost.algo=KL", "--set", "QuantPost.batch_nums=4"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "algo=KL" in cap.err and "4 batches x 32" in cap.err
    assert "set_feed_shape: matched 1" in cap.err
    code = main(["compile", "--config", str(config), "-o", str(out),
                 "--set", "QuantPost.algo=KLL"])
    err = capsys.readouterr().err
    assert code == 2 and "c.yaml:7:9: error: QuantPost.algo: 'KLL' is not one of" in err
    code = main(["compile", "--config", str(config), "-o", str(out), "--set", "algo=KL"])
    assert code == 2 and "write Section.key=value" in capsys.readouterr().err
    nomodel = tmp_path / "n.yaml"
    nomodel.write_text("QuantPost: {}\n")
    code = main(["compile", "--config", str(nomodel), "-o", str(out)])
    assert code == 2 and "compile needs a MODEL argument (or a --config whose Global " \
                         "section has model_dir)" in capsys.readouterr().err


def test_errors_in_lowered_steps_point_into_the_yaml(tmp_path, capsys):
    pytest.importorskip("paddle")
    config = tmp_path / "c.yaml"
    config.write_text("TrainConfig: {epochs: 1}\nDistillation:\n  node: [relu_9.tmp_0]\n")
    code = main(["compile", "example", "--config", str(config), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(rf"{re.escape(str(config))}:2:1: error: distill: .*'relu_9.tmp_0' "
                     r"\(did you mean 'relu_4.tmp_0'\?\) \(in the step lowered from this "
                     r"section", err), err
    assert "(lowered)" not in err
