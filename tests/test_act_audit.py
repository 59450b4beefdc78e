"""The ACT audit (issue 10): every section, key and value ACT 2.6 reads is acted on, noted or
refused -- as ``actc.act.schema.AUDIT`` says, checked by lowering a small config for each entry
(no Paddle, no compile) -- and the audit covers every field of ACT's strategy classes."""
from __future__ import annotations

import json
import re

import pytest

from actc.act import schema
from actc.act.load import ConfigError, loads
from actc.act.lower import lower
from actc.act.schema import ACTED, AUDIT, NOTED, REFUSED
from actc.dsl.compiler import compile_source

PATH = "audit.yaml"

# Other sections each audited section needs to lower (an entry's ``context`` replaces these).
CONTEXT = {
    "QuantAware": {"Distillation": {}, "TrainConfig": {"epochs": 1}},
    "Quantization": {"Distillation": {}, "TrainConfig": {"epochs": 1}},
    "TrainConfig": {"Distillation": {}},
    "Global": {"QuantPost": {}},
}


def config_text(a: schema.Audit) -> tuple[str, int]:
    """A config with the audited key on its own line; returns (text, that line)."""
    if a.key is None:
        lines = [f"{a.section}: {json.dumps(a.value)}"]
        line = 1
    else:
        lines = [f"{a.section}:", f"  {a.key}: {json.dumps(a.value)}"]
        lines += [f"  {k}: {json.dumps(v)}" for k, v in (a.also or {}).items()]
        line = 2
    context = CONTEXT.get(a.section, {}) if a.context is None else a.context
    lines += [f"{s}: {json.dumps(v)}" for s, v in context.items()]
    return "\n".join(lines) + "\n", line


def entry_id(a: schema.Audit) -> str:
    value = json.dumps(a.value)
    value = value if len(value) <= 30 else value[:27] + "..."
    return f"{a.section}.{a.key or '*'}={value}->{a.outcome}"


def mentions(message: str, a: schema.Audit) -> bool:
    return (a.key or a.section) in message


@pytest.mark.parametrize("a", AUDIT, ids=[entry_id(a) for a in AUDIT])
def test_audit_entry(a):
    text, line = config_text(a)
    if a.outcome == REFUSED:
        with pytest.raises(ConfigError) as e:
            lower(loads(text, PATH))
        message = str(e.value)
        assert re.match(rf"{PATH}:{line}:\d+: error: ", message), (message, text)
        assert mentions(message, a), message
        return
    low = lower(loads(text, PATH))
    notes = [n for n in low.notes if n.line == line or (a.section == "Global" and n.line == 1)]
    if a.shows is not None:
        assert a.shows in low.text, (a.shows, low.text)
    compile_source(low.text, f"{PATH} (lowered)")  # the recipe is valid (parsed, type-checked)
    about = [n for n in notes if mentions(n.message, a)]
    if a.outcome == NOTED:
        assert about, (text, [str(n) for n in low.notes])
    else:
        assert a.outcome == ACTED
        assert a.shows is not None, "an acted entry says what the recipe shows"
        assert not [n for n in about if "no effect" in n.message or "ignored" in n.message], \
            [str(n) for n in about]


def test_the_audit_covers_every_field_of_act():
    audited = {(a.section, a.key) for a in AUDIT}
    for fields in (schema.ACT_FIELDS, schema.ACT_OLD_FIELDS):
        for section, keys in fields.items():
            for key in keys:
                assert (section, key) in audited, f"{section}.{key} is not audited"
    for key in schema.ACT_GLOBAL_FIELDS:
        assert ("Global", key) in audited
    # every strategy section and old name, and every script section, has entries
    sections = {a.section for a in AUDIT}
    assert set(schema.ACT_FIELDS) | set(schema.ACT_OLD_FIELDS) <= sections
    assert set(schema.IGNORED_SECTIONS) <= sections


def test_every_act_field_is_a_known_key_of_the_schema():
    for fields in (schema.ACT_FIELDS, schema.ACT_OLD_FIELDS):
        for section, keys in fields.items():
            name = schema.SECTION_ALIASES.get(section, section)
            known = schema.SECTIONS[name].key_names()
            for key in keys:
                assert key in known, f"{section}.{key}"


def test_every_enumeration_value_is_audited():
    """Each allowed value of an enumerated key that ACT has appears in the audit."""
    values = {(a.section, a.key, json.dumps(a.value)) for a in AUDIT}
    for section, keys in schema.ACT_FIELDS.items():
        for key in keys:
            spec = schema.SECTIONS[section].keys.get(key)
            if spec is None or not spec.choices or "list" in spec.types or key == "dtype":
                continue
            for v in spec.choices:
                assert (section, key, json.dumps(v)) in values, f"{section}.{key}: {v}"
    prune_algos = {a.value for a in AUDIT if (a.section, a.key) == ("Prune", "prune_algo")}
    assert prune_algos == set(schema.OLD_PRUNE_ALGOS)


def test_noted_training_keys_compile_the_example(tmp_path, capsys):
    """amp_config, recompute_config, sharding_config and use_fleet are noted at their lines and
    the config still compiles the example to an int8 model."""
    pytest.importorskip("paddle")
    from actc.cli.main import main

    config = tmp_path / "amp.yaml"
    config.write_text("QuantAware:\n  onnx_format: true\nDistillation:\n  loss: l2\n"
                      "TrainConfig:\n  train_iter: 20\n  eval_iter: 20\n  learning_rate: 0.0001\n"
                      "  amp_config: {use_pure_fp16: false, custom_white_list: [conv2d]}\n"
                      "  recompute_config: {checkpoints: []}\n"
                      "  sharding_config: {sharding_degree: 1}\n  use_fleet: false\n")
    code = main(["compile", "example", "--config", str(config), "-o", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    for line, key in ((9, "amp_config"), (10, "recompute_config"), (11, "sharding_config"),
                      (12, "use_fleet")):
        assert f"amp.yaml:{line}:3: note: TrainConfig.{key} has no effect" in cap.err, cap.err
    acc = float(re.search(r"compressed (\d+\.\d+)%", cap.out).group(1))
    assert acc >= 97.0 and "weights stored as int8" in cap.err + cap.out
