"""What a new user trips over: the CLI must say what will happen, accept what it advertises,
and guide toward the fix."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import actc
from actc.cli.main import main
from actc.cli.passes_cmd import catalogue_markdown
from actc.dsl.registry import default_registry
from actc.example import model_path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(model_path("example"))


@pytest.fixture
def program_only(tmp_path):
    d = tmp_path / "prog"
    d.mkdir()
    shutil.copy(EXAMPLE / "model.pdmodel", d)
    return d


def test_dump_shows_a_program_without_its_params(program_only, capsys):
    assert main(["dump", str(program_only)]) == 0
    cap = capsys.readouterr()
    assert "conv2d(" in cap.out and "@conv2d_0.w_0<16x1x3x3 f32>" in cap.out
    assert "24 weights: 14.38K values, 56.2 KiB" in cap.out  # sizes from the VarDescs
    assert "no params file" in cap.err


def test_dump_weights_without_params_uses_vardescs(program_only, capsys):
    assert main(["dump", str(program_only), "--weights"]) == 0
    assert "total: 24 weights, 14.38K values, 57512 bytes" in capsys.readouterr().out


def test_check_model_without_params(program_only, capsys):
    assert main(["check", "ptq", "--model", str(program_only)]) == 0
    out = capsys.readouterr().out
    assert "ok: recipe 'main'" in out and "passes not dry-run" in out


def test_eval_reference_accepts_the_example_alias(capsys):
    data = str(EXAMPLE / "test.npz")
    assert main(["eval", "example", "--data", data, "--reference", "example"]) == 0
    out = capsys.readouterr().out
    assert "SNR inf dB" in out or "cosine 1.000000" in out


def test_eval_without_labels_or_reference_says_nothing_was_measured(tmp_path, capsys):
    import numpy as np

    x = np.load(EXAMPLE / "test.npz")["image"][:16]
    np.savez(tmp_path / "d.npz", image=x)
    assert main(["eval", "example", "--data", str(tmp_path / "d.npz")]) == 0
    assert "nothing measured" in capsys.readouterr().out


def test_debug_after_the_subcommand(capsys):
    assert main(["dump", "--debug", "no/such/model"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err  # --debug took effect after the subcommand


def test_version():
    r = subprocess.run([sys.executable, "-m", "actc", "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"actc {actc.__version__}"


@pytest.mark.parametrize("cmd", ["dump", "compile", "check", "passes", "lower", "eval",
                                 "sensitivity"])
def test_every_command_has_a_description(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    out = capsys.readouterr().out
    # argparse prints the description as its own paragraph after the usage
    paragraphs = [p for p in out.split("\n\n") if p.strip()]
    assert not paragraphs[1].lstrip().startswith(("positional", "options")), out


def test_unknown_bundled_recipe_gets_did_you_mean(tmp_path, capsys):
    rc = main(["compile", "example", "--recipe", "ptqq", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "did you mean 'ptq'?" in err and len(err.strip().splitlines()) == 1
    assert main(["check", "qta"]) == 2
    assert "did you mean 'qat'?" in capsys.readouterr().err


def test_passes_tells_the_truth_about_stages(capsys):
    for spec in default_registry().steps.values():
        if spec.kind == "stage":
            assert main(["passes", spec.name]) == 0
            out = capsys.readouterr().out
            assert f"implementation: actc.runtime.stages:{spec.name}(ctx, args)" in out


def test_check_refuses_what_compile_refuses(tmp_path, capsys, monkeypatch):
    """check and compile agree: a stage compile cannot run fails the check at its step."""
    import actc.runtime.stages as stages

    monkeypatch.delattr(stages, "train")
    recipe = tmp_path / "r.actc"
    recipe.write_text("recipe main() {\n  train(epochs: 1)\n}\n")
    assert main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}:2:3" in err and "train" in err


def test_check_distill_against_the_example_is_true(tmp_path, capsys):
    assert main(["check", "distill", "--model", "example"]) == 0
    assert "train: runtime stage" in capsys.readouterr().out
    assert main(["compile", "example", "--recipe", "distill", "-o", str(tmp_path / "o"),
                 "--set", "epochs=1", "-q", "--no-eval"]) == 0


def test_passes_model_dry_runs_the_named_pass(capsys):
    assert main(["passes", "quantize", "--model", "example"]) == 0
    out = capsys.readouterr().out
    assert "quantize would rewrite 6 of" in out and "quantize: matched 6" in out
    assert main(["passes", "--model", "example"]) == 2  # not silently ignored
    assert "needs a pass" in capsys.readouterr().err
    assert main(["passes", "calibrate", "--model", "example"]) == 2
    assert "runtime stage" in capsys.readouterr().err


def test_dry_run_table_stays_aligned_on_long_op_types(capsys):
    from actc.dsl.quantinfo import Decision, format_decisions

    text = format_decisions([Decision("flatten_contiguous_range", ["out_a"], [], "not selected"),
                             Decision("conv2d", ["out_b"], ["x", "w"], "")])
    rows = text.splitlines()[1:]
    assert rows[0].index("out_a") == rows[1].index("out_b")
    assert rows[0].index("not selected") == rows[1].index("quantize x")


def test_steps_doc_is_generated_from_the_registry():
    doc = (ROOT / "docs" / "steps.md").read_text()
    assert doc == catalogue_markdown(default_registry()), \
        "docs/steps.md is stale: run `actc passes --markdown > docs/steps.md`"


def test_shipped_models_carry_no_developer_paths():
    for f in (EXAMPLE / "model.pdmodel", ROOT / "tests/fixtures/tfm_encoder/model.pdmodel"):
        data = f.read_bytes()
        assert b"/work/" not in data and b"site-packages" not in data, f


def test_paddleslim_benchmark_without_paddleslim_is_one_line():
    import importlib.util

    if importlib.util.find_spec("paddleslim") is not None:
        pytest.skip("PaddleSlim is installed here")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks/ptq_vs_paddleslim.py")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "PaddleSlim is not installed" in r.stderr
