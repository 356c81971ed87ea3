"""The one-line form of foreign error messages that the CLI prints."""

from __future__ import annotations

from yolo_optim.errors import describe, one_line


def test_colour_codes_emoji_and_control_characters_go_letters_of_any_script_stay() -> None:
    raw = "\x1b[31mWARNING ⚠️ cannot read /data/données/Straße/best.pt\x07\x1b[0m\nTraceback follows"
    assert one_line(raw) == "WARNING cannot read /data/données/Straße/best.pt"


def test_long_messages_are_cut_at_a_word_boundary() -> None:
    raw = "the checkpoint could not be read because " + "UnpicklingError " * 20
    line = one_line(raw, limit=60)
    assert len(line) <= 60 and line.endswith("...")
    assert line[:-3].split(" ")[-1] in raw.split(" ")  # no word cut in half


def test_all_lines_keeps_the_cause_a_runtime_puts_after_a_generic_first_line() -> None:
    raw = "Exception from src/core:\n\n  Check failed: input 'images' has dynamic shape\n"
    assert one_line(raw) == "Exception from src/core:"
    assert one_line(raw, all_lines=True) == "Exception from src/core: Check failed: input 'images' has dynamic shape"


def test_describe_names_the_exception_type() -> None:
    assert describe(ValueError("bad\nvalue")) == "ValueError: bad"
    assert describe(KeyError()) == "KeyError"
