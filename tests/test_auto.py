"""Automatic compression (ACT's auto mode): what it chooses, and why, on real programs."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paddle")

from actc.cli.main import main  # noqa: E402
from actc.io.model import load_model  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "tfm_encoder"


def compile_auto(tmp_path, capsys, model, text, *extra):
    recipe = tmp_path / "auto.actc"
    recipe.write_text(text)
    out = tmp_path / "out"
    code = main(["compile", str(model), "--recipe", str(recipe), "-o", str(out), *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return cap, load_model(out)[0]


def test_global_and_train_config_only_compiles_to_int8(tmp_path, capsys):
    config = tmp_path / "act.yaml"
    config.write_text("Global: {model_dir: ./inference_model, batch_size: 32}\n"
                      "TrainConfig: {epochs: 2, eval_iter: 16, learning_rate: 0.005}\n")
    out = tmp_path / "out"
    assert main(["compile", "example", "--config", str(config), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert "no strategy section: actc chooses one automatically" in cap.err
    assert re.search(r"auto: chose ptq: the PTQ probe is already within the allowed loss "
                     r"\(top-1 98\.\d\d% vs float 98\.61%, allowed drop 1\.00 points\)", cap.err)
    types = [op.type for op in load_model(out)[0].ops()]
    assert types.count("quantize_linear") == 6


def test_a_tight_budget_falls_back_to_qat(tmp_path, capsys, example_dir):
    cap, program = compile_auto(tmp_path, capsys, example_dir,
                                "recipe m() { auto(train: {epochs: 3, learning_rate: 0.005}, "
                                "max_drop: 0.0) }")
    assert "auto:   ptq: top-1 98.33%" in cap.err
    assert "auto: * qat: top-1 98.61%" in cap.err and "auto: chose qat" in cap.err
    assert not any(op.has_attr("actc_teacher") for op in program.ops())


def test_without_labels_the_probe_is_judged_by_snr(tmp_path, capsys, example_dir):
    with np.load(example_dir / "test.npz") as z:
        np.savez(tmp_path / "images.npz", image=z["image"])
    cap, _ = compile_auto(tmp_path, capsys, example_dir,
                          "recipe m() { auto(search_trials: 3) }",
                          "--eval-data", str(tmp_path / "images.npz"))
    assert "auto:   ptq: SNR 29.5 dB" in cap.err  # between moderate (20) and small (30)
    assert "auto: * ptq search: SNR" in cap.err and "auto: chose ptq search" in cap.err


def test_transformers_get_transformer_prune_then_int8(tmp_path, capsys):
    cap, program = compile_auto(tmp_path, capsys, FIXTURE,
                                "recipe m() { auto(train: {epochs: 2}) }",
                                "--data", str(FIXTURE / "train.npz"))
    assert "auto: chose transformer: attention blocks found" in cap.err
    types = [op.type for op in program.ops()]
    assert "dequantize_linear" in types
    assert [list(op.attr("shape")) for op in program.ops("reshape2")][0] == [0, 0, 3, 8]


def test_target_speedup_is_measured_and_reported(tmp_path, capsys):
    """Global.target_speedup: the chosen model's speed-up over the input is measured with
    actc bench on this machine; deploy_hardware is noted (no ARM latency tables here)."""
    config = tmp_path / "act.yaml"
    config.write_text("Global: {model_dir: ./m, target_speedup: 100.0, "
                      "deploy_hardware: SD710}\n"
                      "TrainConfig: {epochs: 1, eval_iter: 16}\n")
    assert main(["compile", "example", "--config", str(config), "-o",
                 str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    m = re.search(r"auto: target_speedup 100: not reached, (\d+\.\d\d)x measured \(batch 1, "
                  r"int8 on cpu", err)
    assert m and 0 < float(m[1]) < 100, err
    assert "deploy_hardware 'SD710'" in err
