"""`actc sensitivity`: per-group pruning and per-layer quantization costs on the example,
the JSON, the plot, and a recipe that compiles."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("paddle")

from actc.cli.main import main  # noqa: E402


def test_sensitivity_table_json_plot_and_recipe(tmp_path, capsys):
    out_json, png, recipe = tmp_path / "s.json", tmp_path / "s.png", tmp_path / "s.actc"
    code = main(["sensitivity", "example", "--ratios", "0.25", "0.5", "--bits", "4",
                 "--json", str(out_json), "--plot", str(png), "--emit-recipe", str(recipe),
                 "--max-drop", "3"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "baseline top-1: 98.61%" in cap.out
    assert "conv2d_3.w_0" in cap.out and "quantizing one layer at W4A4" in cap.out
    report = json.loads(out_json.read_text())
    prune = [t for t in report["trials"] if t["kind"] == "prune"]
    quant = [t for t in report["trials"] if t["kind"] == "quantize"]
    assert len(prune) == 3 * 2 and len(quant) == 6
    by = {(t["target"], t["setting"]): t["drop"] for t in prune}
    # the residual group (stem conv) is the most sensitive; more pruning never helps here
    assert by[("conv2d_0.w_0", 0.25)] > by[("conv2d_3.w_0", 0.25)]
    assert all(by[(w, 0.5)] >= by[(w, 0.25)] - 1e-9 for w, _ in by)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = recipe.read_text()
    assert "prune_channels(ops: op.input in [" in text and "quantize()" in text
    assert main(["check", str(recipe), "--model", "example"]) == 0
    for t in quant:  # the emitted skip list holds exactly the layers over budget
        assert (f'"{t["target"]}"' in text) == (t["drop"] > 0.03)
