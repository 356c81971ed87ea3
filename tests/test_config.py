"""The config dataclasses, cfg/default.yaml and the value parser agree and reject bad values clearly."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import yaml

from yolo_optim.config import CONFIGS, defaults, make_config, parse_value
from yolo_optim.errors import OptimError
from yolo_optim.paths import cfg_dir


@pytest.mark.parametrize("mode", sorted(CONFIGS))
def test_dataclass_fields_match_default_yaml(mode):
    names = {f.name for f in fields(CONFIGS[mode])}
    assert names == set(defaults(mode)), f"{mode}: dataclass and cfg/default.yaml drifted apart"
    make_config(mode)  # the shipped defaults themselves validate


def test_every_default_key_is_documented():
    text = (cfg_dir() / "default.yaml").read_text()
    sections = yaml.safe_load(text)
    for section, keys in sections.items():
        for k in keys or {}:
            line = next(ln for ln in text.splitlines() if re.match(rf"\s+{k}:", ln))
            assert re.search(r"#\s*\((\w|\s|,|\|)+\)\s+\S", line), f"{section}.{k} lacks '# (type) meaning': {line}"


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("true", True), ("False", False), ("none", None),
                                        ("yolo11n.yaml", "yolo11n.yaml"), ("a.pt,b.pt", "a.pt,b.pt"),
                                        ("__import__('os').system('x')", "__import__('os').system('x')")])
def test_parse_value_is_literal_only(text, value):
    assert parse_value(text) == value


def test_overrides_and_cfg_file_precedence(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("imgsz: 320\nbatch: 4\ntrials: 7\n")  # trials belongs to another mode: allowed in a shared file
    cfg = make_config("export", {"batch": 2}, cfg=str(f))
    assert (cfg.imgsz, cfg.batch) == (320, 2)


@pytest.mark.parametrize("overrides,pattern", [
    ({"imgsx": 64}, r"'imgsx' is not a valid key.*did you mean 'imgsz'"),
    ({"imgsz": "big"}, r"imgsz='big' has the wrong type; expected int"),
    ({"imgsz": -32}, r"imgsz=-32 is too small"),
    ({"imgsz": 0}, r"imgsz=0 is too small"),
    ({"imgsz": 100}, r"imgsz=100 is not a multiple of 32"),
    ({"batch": 0}, r"batch=0 is too small"),
    ({"precision": "int4"}, r"precision=int4 is not allowed; choose one of"),
    ({"exist_ok": "maybe"}, r"exist_ok='maybe' has the wrong type; expected bool"),
])
def test_bad_values_name_key_value_and_allowed(overrides, pattern):
    with pytest.raises(OptimError, match=pattern):
        make_config("export", overrides)


def test_bad_cfg_files(tmp_path):
    with pytest.raises(OptimError, match="does not exist"):
        make_config("export", cfg=str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("imgsz: [1, 2\n")
    with pytest.raises(OptimError, match="not valid YAML"):
        make_config("export", cfg=str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("imgszz: 64\n")
    with pytest.raises(OptimError, match="did you mean 'imgsz'"):
        make_config("export", cfg=str(unknown))
