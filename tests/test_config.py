"""The config dataclasses, cfg/default.yaml and the value parser agree and reject bad values clearly."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
import yaml

from yolo_optim.config import CONFIGS, defaults, make_config, parse_value
from yolo_optim.errors import OptimError
from yolo_optim.paths import cfg_dir


def _section_lines() -> dict[str, dict[str, str]]:
    """Each section of cfg/default.yaml with its own key lines (a key is looked up in its section only)."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in (cfg_dir() / "default.yaml").read_text().splitlines():
        if m := re.match(r"^(\w+):\s*(#.*)?$", line):
            section = m.group(1)
            out[section] = {}
        elif section and (m := re.match(r"^\s+(\w+):", line)):
            out[section][m.group(1)] = line
    return out


def test_every_section_matches_its_dataclass():
    from yolo_optim.config import CommonConfig

    sections = yaml.safe_load((cfg_dir() / "default.yaml").read_text())
    assert set(sections) == {"common", *CONFIGS}, "a section without a mode, or a mode without a section"
    assert set(_section_lines()) == set(sections)
    common = set(sections["common"])
    assert common == {f.name for f in fields(CommonConfig)}
    for mode, cls in CONFIGS.items():
        names = {f.name for f in fields(cls)}
        own = set(sections[mode] or {})
        assert own <= names, f"{mode}: keys in cfg/default.yaml without a field: {sorted(own - names)}"
        given = own | (common if issubclass(cls, CommonConfig) else set())
        assert names == given, f"{mode}: fields without a default in its section: {sorted(names - given)}"
        assert set(defaults(mode)) == names
        make_config(mode)  # the shipped defaults themselves validate


def test_every_default_key_is_documented_in_its_own_section():
    for section, lines in _section_lines().items():
        for k, line in lines.items():
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
