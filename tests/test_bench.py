"""actc bench: each model in Paddle Inference with the configuration that suits it, measured
in a process of its own; compile reports the size before and after."""
import json

import pytest

pytest.importorskip("paddle")

from actc.cli.main import main  # noqa: E402
from actc.deploy.predictor import plan_for  # noqa: E402
from actc.example import model_path  # noqa: E402
from actc.io.model import load_model  # noqa: E402

pytestmark = pytest.mark.paddle


@pytest.fixture(scope="module")
def int8_example(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "int8"
    assert main(["compile", "example", "--recipe", "ptq", "-o", str(out), "-q",
                 "--no-eval"]) == 0
    return out


def test_int8_models_get_onednn_int8(int8_example):
    fp32, _ = load_model(model_path("example"))
    int8, _ = load_model(int8_example)
    assert plan_for(fp32, "cpu", 1).precision == "fp32"
    plan = plan_for(int8, "cpu", 2)
    assert plan.precision == "int8" and "enable_mkldnn_int8" in plan.describe()
    assert "tensorrt" in plan_for(int8, "gpu", 1).describe()


def test_bench_json(int8_example, capsys):
    rc = main(["bench", "example", str(int8_example), "--batch", "1", "4", "--repeats", "5",
               "--warmup", "1", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = json.loads(out)
    assert [r["error"] for r in rows] == [None, None]
    for r in rows:
        assert set(r["batches"]) == {"1", "4"}
        for m in r["batches"].values():
            assert 0 < m["median_ms"] <= m["p90_ms"]
            assert m["throughput"] > 0
        assert r["peak_rss_mb"] > 50
    src = load_model(model_path("example"))[1]
    assert rows[0]["size_bytes"] == src.program.stat().st_size + src.params.stat().st_size
    assert rows[1]["size_bytes"] < rows[0]["size_bytes"]  # int8 weights
    assert rows[1]["config"].startswith("int8 on cpu")


def test_bench_table_names_the_configuration(int8_example, capsys):
    assert main(["bench", str(int8_example), "--batch", "2", "--repeats", "3",
                 "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "enable_mkldnn_int8" in out


def test_bench_bad_shape_is_one_line(capsys):
    assert main(["bench", "example", "--shape", "image:1xAx8"]) == 2
    err = capsys.readouterr().err
    assert "--shape expects" in err and len(err.strip().splitlines()) == 1


def test_compile_reports_size_before_and_after(tmp_path, capsys):
    assert main(["compile", "example", "--recipe", "ptq", "-o", str(tmp_path / "o"),
                 "--no-eval"]) == 0
    assert "size: 66.2 KiB -> 34.1 KiB (1.94x smaller)" in capsys.readouterr().err
