"""Every bundled recipe (configs/*.actc) runs on the embedded example (the transformer recipe
on the transformer fixture) through the CLI, and the written model keeps an accuracy floor.
Training recipes run three epochs to stay fast."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paddle")

from actc.cli.main import main  # noqa: E402
from actc.dsl.resources import data_dir  # noqa: E402
from actc.example import model_path  # noqa: E402

pytestmark = pytest.mark.paddle

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tfm_encoder"
RECIPES = sorted(p.name[:-5] for p in data_dir("actc.configs").iterdir()
                 if p.name.endswith(".actc"))
# measured with three epochs (fp32: example 98.61%): ptq 98.33, ptq_search 98.61, qat 98.33,
# qat4 97.50, distill 98.61, asp 97.78, sparsify 98.06, prune_channels 93.89; the transformer
# fixture: prune_transformer 99.50
FLOORS = {"ptq": 0.975, "ptq_search": 0.975, "qat": 0.975, "qat4": 0.96, "distill": 0.975,
          "asp": 0.965, "sparsify": 0.965, "prune_channels": 0.92, "prune_transformer": 0.98}


def _top1(model_dir: Path, data: Path) -> float:
    from actc.io.model import load_model
    from actc.runtime.executor import Runner

    program, _ = load_model(model_dir)
    arrays = np.load(data)
    feed = program.feed_names()[0]
    logits = Runner(program, "cpu").run({feed: arrays[feed]})[0]
    return float((logits.argmax(-1) == arrays["label"].reshape(-1)).mean())


def test_every_bundled_recipe_has_a_floor():
    assert set(RECIPES) == set(FLOORS)


@pytest.mark.parametrize("name", RECIPES)
def test_bundled_recipe_runs(name, tmp_path, capsys):
    text = (Path(str(data_dir("actc.configs"))) / f"{name}.actc").read_text()
    model = str(FIXTURE) if name == "prune_transformer" else "example"
    extra = ["--data", str(FIXTURE / "train.npz")] if name == "prune_transformer" else []
    sets = ["--set", "epochs=3"] if "epochs: int" in text else []
    out = tmp_path / "out"
    rc = main(["compile", model, "--recipe", name, "-o", str(out), "--no-eval", "-q",
               *sets, *extra])
    assert rc == 0, capsys.readouterr().err
    test = FIXTURE / "test.npz" if name == "prune_transformer" else \
        Path(model_path("example")) / "test.npz"
    acc = _top1(out, test)
    assert acc >= FLOORS[name], (name, acc)


def test_ptq_recipe_exposes_every_calibrate_parameter():
    """Everything a user might tune in calibrate is reachable by --set on the bundled ptq."""
    from actc.dsl.compiler import compile_file
    from actc.dsl.registry import default_registry

    compiled = compile_file("ptq")
    calibrate = default_registry().get("calibrate")
    assert {p.name for p in calibrate.params} <= set(compiled.params)
    compiled = compile_file("ptq", overrides={"epochs": "3", "lr": "0.05"})
    (step,) = [s for s in compiled.steps if s.name == "calibrate"]
    assert step.args["epochs"] == 3 and step.args["lr"] == 0.05
