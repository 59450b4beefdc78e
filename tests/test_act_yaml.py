"""ACT YAML front end: loading, validation messages, normalisation and lowering (no Paddle)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from actc.act import optypes, schema
from actc.act.load import ConfigError, loads, load_config
from actc.act.lower import lower
from actc.dsl.values import EnumName as Enum, Range, SelectorText as Selector

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def L(text: str, path: str = "c.yaml"):
    return loads(textwrap.dedent(text), path)


def err(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        L(text)
    return str(e.value)


def steps(text: str):
    return [(s.name, s.args) for s in lower(L(text)).steps]


def names(text: str):
    return [s.name for s in lower(L(text)).steps]


# -- every seed example lowers ------------------------------------------------------------------

SEED_EXAMPLES = {
    "act_quant_aware.yaml": ["skip_ops", "quantize", "distill", "train", "convert"],
    "act_quant_post.yaml": ["skip_ops", "quantize", "calibrate", "convert"],
    "act_quant_post_hpo.yaml": ["skip_ops", "quantize", "calibrate", "search", "convert"],
    "act_distill.yaml": ["distill", "train"],
    "act_channel_prune.yaml": ["prune_channels", "distill", "train"],
    "act_asp.yaml": ["asp_prune", "task_loss", "distill", "train"],  # labels, else distil
    "act_transformer_prune.yaml": ["prune_transformer", "distill", "train", "restore_xshape"],
    "act_unstructure_prune.yaml": ["sparsify", "task_loss", "distill", "train"],
    "act_old_format.yaml": ["sparsify", "distill", "train", "skip_ops", "pact", "quantize",
                            "distill", "train", "convert"],
}


@pytest.mark.parametrize("name,expected", sorted(SEED_EXAMPLES.items()))
def test_seed_examples_lower(name, expected):
    cfg = load_config(CONFIGS / name)
    low = lower(cfg)
    assert [s.name for s in low.steps] == expected
    assert low.text.count("recipe main() {") == 1 and low.text.rstrip().endswith("}")
    assert not any(n.kind == "error" for n in low.notes)


def test_hand_written_recipes_exist():
    for n in ("ptq", "ptq_search", "qat", "distill", "prune_channels", "asp",
              "prune_transformer", "sparsify"):
        text = (CONFIGS / f"{n}.actc").read_text()
        assert "recipe main(" in text and text.lstrip().startswith("#")
    ptq = (CONFIGS / "ptq.actc").read_text()
    assert "weight_bits: int = 8" in ptq and "algo: enum = auto" in ptq  # (issue 12 default)
    assert "op.type in {conv2d, depthwise_conv2d, mul, matmul_v2}" in ptq and "format: onnx" in ptq


# -- golden recipe for QuantPost ----------------------------------------------------------------

GOLDEN_QUANT_POST = '''\
# actc recipe lowered from the ACT config act_quant_post.yaml.
# Edit freely: this is the plan `actc compile` runs (syntax: docs/language.md).
# Model (Global.model_dir): ./inference_model (model.pdmodel, model.pdiparams)
recipe main() {
    # QuantPost (act_quant_post.yaml:7): post-training quantization -- insert quantize/dequantize ops, calibrate scales on data, freeze.
    # not_quant_pattern (ACT default [skip_quant]): these ops stay float (FAQ 4: set an op's name_scope to skip it).
    skip_ops(ops: op.name_scope contains "skip_quant")

    # Insert quantize/dequantize pairs (W8A8); onnx_format: true (PaddleSlim default) -> format: onnx.
    # quantize_op_types (QuantPost default) -> op.type in {...}
    quantize(ops: op.type in {conv2d, depthwise_conv2d, mul, matmul, matmul_v2},
             weight_bits: 8,
             activation_bits: 8,
             weight_quantize_type: channel_wise_abs_max,
             activation_quantize_type: range_abs_max,
             format: onnx)

    # Calibrate activation scales with hist on 50 x 32 samples.
    calibrate(algo: hist,
              hist_percent: 0.999,
              batch_size: 32,
              batch_nums: 50,
              bias_correction: false)

    # Freeze: fold scales, store int8 weights, drop calibration-only ops.
    convert()
}
'''


def test_golden_quant_post():
    cfg = loads((CONFIGS / "act_quant_post.yaml").read_text(), "act_quant_post.yaml")
    assert lower(cfg).text == GOLDEN_QUANT_POST
    assert cfg.model_location.model_dir == "./inference_model"
    assert cfg.model_location.model_filename == "model.pdmodel"
    assert cfg.model_location.params_filename == "model.pdiparams"
    # "None" in the seed means null
    qp = cfg.sections["QuantPost"]
    assert qp["recon_level"] is None and qp["regions"] is None and qp["skip_tensor_list"] is None


# -- every key of seed 000 ----------------------------------------------------------------------

def test_quant_aware_keys():
    cfg = load_config(CONFIGS / "act_quant_aware.yaml")
    q = cfg.sections["QuantAware"]
    assert q["use_pact"] is False and q["onnx_format"] is True and q["dtype"] == "int8"
    assert q["window_size"] == 10000 and q["moving_rate"] == 0.9
    st = dict(steps((CONFIGS / "act_quant_aware.yaml").read_text()))
    assert st["quantize"]["ops"] == "op.type in {conv2d, depthwise_conv2d, matmul_v2}"
    assert st["quantize"]["format"] == "fake" and "pact" not in st
    assert st["quantize"]["moving_rate"] == 0.9
    assert st["convert"] == {"format": "onnx"}  # trained with fake ops, exported ONNX-style
    assert st["skip_ops"]["ops"] == 'op.name_scope contains "skip_quant"'
    assert st["train"]["learning_rate"] == {"type": "PiecewiseDecay", "boundaries": [48],
                                            "values": [0.005, 0.0005]}


def test_for_tensorrt_and_full_quantize_lists():
    st = dict(steps("""
        QuantAware:
          for_tensorrt: true
          quantize_op_types: [conv2d]
        TrainConfig: {epochs: 1}
    """))
    assert st["quantize"]["ops"] == Selector(
        "op.type in {mul, conv2d, pool2d, depthwise_conv2d, elementwise_add, leaky_relu}")
    st = dict(steps("""
        QuantPost:
          is_full_quantize: true
    """))
    sel = st["quantize"]["ops"]
    from actc.dsl.known_ops import KNOWN_OP_TYPES
    listed = {n.strip().strip('"') for n in sel[sel.index("{") + 1:-1].split(",")}
    for t in optypes.FULL_QUANT_OP_TYPES:  # (legacy names no Paddle 3 model holds left out)
        assert (t in listed) == (t in KNOWN_OP_TYPES), t
    assert "argmax" not in sel and "arg_max" in sel
    assert '"where"' in sel  # a grammar keyword is quoted


def test_not_quant_pattern_string_and_or():
    st = dict(steps("""
        QuantPost:
          not_quant_pattern: a
          skip_tensor_list: [x.tmp_0, y.tmp_0]
    """))
    assert st["skip_ops"]["ops"] == ('op.name_scope contains "a" or '
                                     'op.output in ["x.tmp_0", "y.tmp_0"]')
    st = dict(steps("""
        QuantPost:
          not_quant_pattern: [a, b]
    """))
    assert st["skip_ops"]["ops"] == 'op.name_scope contains "a" or op.name_scope contains "b"'


def test_quant_post_keys_and_recon():
    st = dict(steps("""
        QuantPost:
          batch_size: 16
          batch_nums: None
          algo: KL
          hist_percent: 0.99
          bias_correction: true
          recon_level: layer-wise
          epochs: 5
          lr: 0.01
          simulate_activation_quant: true
          onnx_format: false
          weight_quantize_type: abs_max
    """))
    c = st["calibrate"]
    assert c["algo"] == Enum("KL") and "hist_percent" not in c
    assert c["batch_size"] == 16 and c["batch_nums"] is None and c["bias_correction"] is True
    assert c["recon_level"] == "layer_wise" and "regions" not in c
    assert c["epochs"] == 5 and c["lr"] == 0.01 and c["simulate_activation_quant"] is True
    assert st["quantize"]["format"] == "fake"


def test_region_wise_lowers_with_or_without_regions():
    given = "QuantPost:\n  recon_level: region-wise\n  regions: [[a.tmp_0, b.tmp_0]]\n"
    automatic = "QuantPost:\n  recon_level: region-wise\n"
    for text, regions in ((given, [["a.tmp_0", "b.tmp_0"]]), (automatic, None)):
        c = dict(steps(text))["calibrate"]
        assert c["recon_level"] == Enum("region_wise") and c.get("regions") == regions


def test_hpo_keys():
    cfg = load_config(CONFIGS / "act_quant_post_hpo.yaml")
    low = lower(cfg)
    search = dict((s.name, s.args) for s in low.steps)["search"]
    assert search["ptq_algo"] == ["KL", "hist", "avg", "mse"]
    assert search["bias_correction"] == [True, False]
    assert search["hist_percent"] == Range(0.98, 0.999)
    assert search["batch_num"] == Range(10, 30)
    assert "hist_percent: 0.98 .. 0.999" in low.text
    warnings = [str(n) for n in cfg.notes if n.kind == "warning"]
    assert warnings == [
        f"{CONFIGS / 'act_quant_post_hpo.yaml'}:11:32: warning: ignored the trailing ',' after "
        "this value (not valid YAML; copied from ACT's tutorial?)",
        f"{CONFIGS / 'act_quant_post_hpo.yaml'}:12:24: warning: ignored the trailing ',' after "
        "this value (not valid YAML; copied from ACT's tutorial?)",
    ]


def test_hpo_needs_quant_post():
    assert err("""
        HyperParameterOptimization:
          ptq_algo: [KL]
    """) == ("c.yaml:2:1: error: HyperParameterOptimization searches QuantPost's "
             "hyper-parameters: add a QuantPost section")


def test_distillation_node_forms():
    st = dict(steps("""
        Distillation:
          node: [relu_30.tmp_0, relu_31.tmp_0]
    """))
    assert st["distill"]["nodes"] == [["teacher_relu_30.tmp_0", "relu_30.tmp_0"],
                                      ["teacher_relu_31.tmp_0", "relu_31.tmp_0"]]
    assert names("""
        Distillation:
    """) == ["distill", "train"]
    st = dict(steps((CONFIGS / "act_distill.yaml").read_text()))
    d = st["distill"]
    assert d["teacher"] == "example" and d["teacher_model_filename"] == "model.pdmodel"
    assert d["teacher_params_filename"] == "model.pdiparams"
    assert d["nodes"][1] == ["teacher_linear_1.tmp_1", "linear_1.tmp_1"]
    assert d["alpha"] == 1.0 and d["loss"] == "l2"
    st = dict(steps("""
        Distillation:
          loss: [l2, fsp]
          alpha: [1.0, 0.5]
          node: [[t_a, a], [t_b, b]]
    """))
    assert st["distill"]["loss"] == ["l2", "fsp"] and st["distill"]["alpha"] == [1.0, 0.5]
    assert st["distill"]["nodes"] == [["t_a", "a"], ["t_b", "b"]]


def test_multi_teacher():
    st = steps("""
        MultiTeacherDistillation:
          teacher_model_dir: [./t1, ./t2]
          loss: [l2, soft_label]
          node: [[[teacher1_a, a]], [[teacher2_b, b]]]
          alpha: [1.0, 0.5]
    """)
    d = [a for n, a in st if n == "distill"]
    assert len(d) == 2 and d[1]["teacher"] == "./t2" and d[1]["teacher_prefix"] == "teacher2_"
    assert d[1]["loss"] == "soft_label" and d[1]["alpha"] == 0.5


def test_channel_asp_transformer_keys():
    st = dict(steps((CONFIGS / "act_channel_prune.yaml").read_text()))
    assert st["prune_channels"] == {"ops": 'op.input in ["conv2d_0.w_0", "conv2d_3.w_0"]',
                                    "ratio": 0.25, "criterion": "l1_norm"}
    st = dict(steps("""
        ChannelPrune:
          pruned_ratio: [0.5, 0.25]
          prune_params_name: [conv2d_0.w_0, conv2d_3.w_0]
    """))
    assert st["prune_channels"]["ratio"] == {"conv2d_0.w_0": 0.5, "conv2d_3.w_0": 0.25}
    st = dict(steps("""
        ChannelPrune:
          pruned_ratio: 0.3
          prune_params_name: None
          criterion: bn_scale
    """))
    assert st["prune_channels"]["ops"] == "op.type == conv2d and op.attr.groups == 1"
    st = dict(steps((CONFIGS / "act_asp.yaml").read_text()))
    assert st["asp_prune"] == {"ops": 'op.input in ["conv2d_3.w_0", "linear_0.w_0"]'}
    st = dict(steps((CONFIGS / "act_transformer_prune.yaml").read_text()))
    assert st["prune_transformer"] == {"ratio": 0.25}


def test_unstructure_keys():
    st = dict(steps((CONFIGS / "act_unstructure_prune.yaml").read_text()))
    s = st["sparsify"]
    assert s["ops"] == "op.is_conv1x1" and s["mode"] == "ratio" and s["ratio"] == 0.75
    assert s["local_sparsity"] is True and s["strategy"] == "gmp"
    assert s["gmp"] == {"stable_iterations": 0, "pruning_iterations": 40,
                        "tunning_iterations": 40, "resume_iteration": -1,
                        "pruning_steps": 4, "initial_ratio": 0.15}
    st = dict(steps("""
        UnstructurePrune:
          prune_mode: threshold
          threshold: 0.001
          prune_params_type: None
    """))
    s = st["sparsify"]
    assert s["threshold"] == 0.001 and "ratio" not in s and "strategy" not in s
    assert s["ops"].startswith("op.has_weight and not (op.type in {batch_norm")


def test_train_config_keys():
    st = dict(steps("""
        Distillation:
        TrainConfig:
          train_iter: 1000
          learning_rate: {type: CosineAnnealingDecay, T_max: 1000}
          optimizer_builder:
            optimizer: {type: Momentum, momentum: 0.9}
            weight_decay: 4.0e-05
            grad_clip: {type: ClipGradByGlobalNorm, clip_norm: 1.0}
          eval_iter: 100
          logging_iter: 5
          target_metric: 0.7
          amp_config: {use_pure_fp16: true}
          sparse_model: true
    """))
    t = st["train"]
    assert t["train_iter"] == 1000 and "epochs" not in t
    assert t["learning_rate"] == {"type": "CosineAnnealingDecay", "T_max": 1000}
    assert t["optimizer"] == {"type": "Momentum", "momentum": 0.9}
    assert t["weight_decay"] == 4e-05
    assert t["grad_clip"] == {"type": "ClipGradByGlobalNorm", "clip_norm": 1.0}
    assert t["eval_iter"] == 100 and t["logging_iter"] == 5 and t["target_metric"] == 0.7
    assert "amp" not in t and t["sparse_model"] is True  # amp_config: noted, float32
    text = lower(L("""
        Distillation:
        TrainConfig: {learning_rate: 1.0e-05}
    """)).text
    assert "learning_rate: 1.0e-05" in text


def test_no_train_config_is_explained():
    low = lower(L("""
        QuantAware:
          weight_bits: 4
    """))
    assert [s.name for s in low.steps] == ["skip_ops", "quantize", "task_loss", "distill",
                                           "train", "convert"]
    assert "No TrainConfig: ACT would not train" in low.text
    assert "No Distillation section: ACT would not train the quantized model at all" in low.text
    assert "task_loss(only_if: labels)" in low.text and "distill(only_if: no_labels)" in low.text
    assert any("no TrainConfig section" in str(n) for n in low.notes)


def test_no_strategy_means_auto():
    assert err.__name__  # keep flake quiet
    low = lower(L("""
        Global: {batch_size: 16, target_speedup: 2.0}
        TrainConfig: {epochs: 1, target_metric: 0.98}
    """))
    (step,) = low.steps
    assert step.name == "auto" and step.args["target_metric"] == 0.98
    assert step.args["train"]["epochs"] == 1 and step.args["train"]["batch_size"] == 16
    assert step.args["target_speedup"] == 2.0
    assert "No strategy section: automatic compression" in low.text
    assert any("chooses one automatically" in str(n) for n in low.notes)


# -- seed 001: old names ------------------------------------------------------------------------

def test_old_format_notes_and_values():
    p = CONFIGS / "act_old_format.yaml"
    cfg = load_config(p)
    notes = [str(n).replace(str(p), "F") for n in cfg.notes]
    assert notes == [
        "F:4:1: note: 'Quantization' is the old name of 'QuantAware'; read as QuantAware",
        "F:15:5: note: Distillation.distill_lambda is the old name of alpha; read as alpha",
        "F:16:5: note: Distillation.distill_loss is the old name of loss; read as loss",
        "F:16:19: note: Distillation.loss: 'l2_loss' is the old name of 'l2'; read as 'l2'",
        "F:17:5: note: Distillation.distill_node_pair is the old name of node; read as node",
        "F:28:5: note: UnstructurePrune.pruned_ratio is the old name of ratio; read as ratio",
        "F:30:5: warning: UnstructurePrune: read stable_iterations, pruning_iterations, "
        "tunning_iterations, resume_iteration, pruning_steps, initial_ratio as keys of "
        "gmp_config (they are not indented under it, so YAML makes gmp_config empty)",
        "F:43:3: note: TrainConfig.optimizer/optim_args are the old form of optimizer_builder; "
        "read as optimizer_builder",
    ]
    d = cfg.sections["Distillation"]
    assert d["alpha"] == 1.0 and d["loss"] == "l2" and d["merge_feed"] is True
    assert d["node"] == ["teacher_linear_1.tmp_1", "linear_1.tmp_1"]
    assert cfg.sections["UnstructurePrune"]["ratio"] == 0.75
    assert cfg.sections["TrainConfig"]["optimizer_builder"]["optimizer"] == {"type": "SGD"}
    assert cfg.sections["TrainConfig"]["optimizer_builder"]["weight_decay"] == 0.0005
    q = cfg.sections["QuantAware"]
    assert q["use_pact"] is True and q["activation_quantize_type"] == "range_abs_max"


def test_old_loss_names_and_prune_section():
    for old, new in (("soft_label_loss", "soft_label"), ("fsp_loss", "fsp")):
        cfg = L(f"""
            Distillation:
              distill_loss: {old}
        """)
        assert cfg.sections["Distillation"]["loss"] == new
    cfg = L("""
        Prune:
          prune_algo: asp
          prune_params_name: [w]
    """)
    assert "ASPPrune" in cfg.sections
    assert str(cfg.notes[0]) == ("c.yaml:3:3: note: 'Prune' with prune_algo asp is the old form "
                                 "of 'ASPPrune'; read as ASPPrune")
    cfg = L("""
        Prune:
          prune_algo: prune
          pruned_ratio: 0.5
    """)
    assert cfg.sections["ChannelPrune"]["pruned_ratio"] == 0.5
    cfg = L("""
        TrainConfig:
          optimizer: Momentum
          optim_args: {momentum: 0.9, weight_decay: 1.0e-4}
    """)
    b = cfg.sections["TrainConfig"]["optimizer_builder"]
    assert b["optimizer"] == {"type": "Momentum", "momentum": 0.9} and b["weight_decay"] == 1e-4


def test_merge_feed_false_is_passed():
    st = dict(steps("""
        Distillation:
          merge_feed: false
    """))
    assert st["distill"]["merge_feed"] is False


# -- exact error messages -----------------------------------------------------------------------

def test_unknown_key_did_you_mean():
    assert err("""
        QuantAware:
          weight_bit: 8
    """) == "c.yaml:3:3: error: QuantAware: unknown key 'weight_bit' (did you mean 'weight_bits'?)"


def test_unknown_nested_key():
    assert err("""
        TrainConfig:
          optimizer_builder:
            optimiser: {type: SGD}
    """) == ("c.yaml:4:5: error: TrainConfig.optimizer_builder: unknown key 'optimiser' "
             "(did you mean 'optimizer'?)")


def test_wrong_type():
    assert err("""
        QuantPost:
          batch_size: thirty
    """) == "c.yaml:3:15: error: QuantPost.batch_size: expected an int, got string 'thirty'"
    assert err("""
        QuantAware:
          use_pact: 1
    """) == "c.yaml:3:13: error: QuantAware.use_pact: expected a bool (true/false), got int 1"


def test_bad_enum_value():
    assert err("""
        QuantPost:
          algo: kl
    """) == ("c.yaml:3:9: error: QuantPost.algo: 'kl' is not one of KL, hist, avg, mse, emd, "
             "abs_max, min_max, ptf (did you mean 'KL'?)")
    assert err("""
        QuantAware:
          quantize_op_types: [conv2d, matmulv2]
    """) == ("c.yaml:3:31: error: QuantAware.quantize_op_types[1]: 'matmulv2' is not one of "
             + ", ".join(sorted(optypes.QUANTIZABLE_OP_TYPES)) + " (did you mean 'matmul_v2'?)")


def test_bits_out_of_range():
    assert err("""
        QuantAware:
          weight_bits: 16
    """) == ("c.yaml:3:16: error: QuantAware.weight_bits: 16 is out of range: actc supports "
             "1..8 bits (ACT's table allows 1..16)")
    assert err("""
        QuantPost:
          activation_bits: 0
    """) == "c.yaml:3:20: error: QuantPost.activation_bits: 0 is out of range (1..8)"


def test_ratio_out_of_range():
    assert err("""
        ChannelPrune:
          pruned_ratio: 1.5
    """) == "c.yaml:3:17: error: ChannelPrune.pruned_ratio: 1.5 is out of range (0.0..1.0)"


def test_missing_required():
    assert err("""
        TransformerPrune: {}
    """) == "c.yaml:2:1: error: TransformerPrune: missing required key 'pruned_ratio'"


def test_unknown_section_did_you_mean():
    assert err("""
        QuantAwar:
          weight_bits: 8
    """) == "c.yaml:2:1: error: unknown section 'QuantAwar' (did you mean 'QuantAware'?)"
    assert err("""
        Distilation: {}
    """) == "c.yaml:2:1: error: unknown section 'Distilation' (did you mean 'Distillation'?)"


def test_global_batch_size_is_the_train_batch_size():
    st = dict(steps("""
        Global: {batch_size: 64}
        Distillation: {}
        TrainConfig: {epochs: 1}
    """))
    assert st["train"]["batch_size"] == 64


def test_ignored_sections_note():
    cfg = L("""
        Global:
          model_dir: ./m
          input_name: x
        EvalDataset:
          name: ImageNet
        Metric:
          name: TopkAcc
        QuantPost: {}
    """)
    assert [str(n) for n in cfg.notes] == [
        "c.yaml:2:1: note: ignored: Global.input_name (example-script settings; actc reads "
        "only model_dir, model_filename, params_filename, batch_size, input_shapes, "
        "target_speedup and deploy_hardware)",
        "c.yaml:5:1: note: ignored: section 'EvalDataset' (evaluation data is given to actc "
        "separately)",
        "c.yaml:7:1: note: ignored: section 'Metric' (evaluation metrics are the user's "
        "script's business)",
    ]
    assert cfg.model_location.model_dir == "./m" and cfg.model_location.model_filename is None
    # Global is read (model, batch size, ...): only its unread keys count as ignored
    assert cfg.ignored_sections == ["Global.input_name", "EvalDataset", "Metric"]


def test_old_and_new_name_together():
    assert err("""
        Distillation:
          alpha: 1.0
          distill_lambda: 0.5
    """) == "c.yaml:4:3: error: Distillation: both 'alpha' and its old name 'distill_lambda' are set"
    assert err("""
        Quantization: {}
        QuantAware: {}
    """) == "c.yaml:3:1: error: section 'QuantAware' is set twice (also as 'Quantization')"


def test_duplicate_key_and_bad_yaml():
    assert err("""
        QuantPost:
          algo: KL
          algo: hist
    """) == "c.yaml:4:3: error: QuantPost: duplicate key 'algo' (first set on line 3)"
    assert str(err("""
        QuantPost:
          algo: [KL
    """)).startswith("c.yaml:")


def test_conflicting_sections():
    assert err("""
        QuantPost: {}
        QuantAware: {}
    """).endswith("exclude each other: keep one")


def test_ptq_only_keys_warn():
    cfg = L("""
        QuantPost:
          use_pact: true
    """)
    assert str(cfg.notes[0]) == ("c.yaml:3:3: warning: QuantPost.use_pact has no effect: it only "
                                 "matters for quantization-aware training")


def test_float_as_string_read_as_number():
    cfg = L("""
        Distillation:
        TrainConfig:
          learning_rate: 1e-3
    """)
    assert cfg.sections["TrainConfig"]["learning_rate"] == 0.001
    assert "read '1e-3' as the number 0.001" in str(cfg.notes[0])


def test_schema_table_is_complete():
    for sec in ("QuantAware", "QuantPost", "HyperParameterOptimization", "Distillation",
                "MultiTeacherDistillation", "ChannelPrune", "ASPPrune", "TransformerPrune",
                "UnstructurePrune", "TrainConfig"):
        assert sec in schema.SECTIONS
        for k in schema.SECTIONS[sec].keys.values():
            assert k.doc and k.types
    assert schema.SECTION_ALIASES == {"Quantization": "QuantAware"}
    for s in ("Global", "TrainDataset", "EvalDataset", "EvalReader", "TrainReader", "Metric",
              "PostProcess"):
        assert s in schema.IGNORED_SECTIONS


def test_a_long_single_argument_still_renders_a_valid_recipe():
    from actc.dsl.parser import parse

    low = lower(L("""
        QuantPost:
          skip_tensor_list: [conv2d_0.tmp_0_a_long_name_aaaaaaaaaa, conv2d_1.tmp_0_a_long_name_bbbbbbbbbb, conv2d_2.tmp_0_long_name_c]
    """))
    line = next(l for l in low.text.splitlines() if "skip_ops(" in l)
    assert len(line) > 100 and line.rstrip().endswith(")")
    parse(low.text, "<lowered>")  # parses
