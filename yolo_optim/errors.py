"""The one exception type for mistakes a user can fix; the CLI prints it in one line and exits 2."""

from __future__ import annotations

import re
import unicodedata


class OptimError(Exception):
    """A user-facing error: bad input, a missing optional backend, an unmet target.

    The message must say what is wrong and what to do about it, in one line.
    """


class BackendUnavailable(OptimError):
    """An optional backend (openvino, nncf, tensorrt, ray) is not installed or has no device here."""


def missing_extra(package: str, extra: str | None = None) -> BackendUnavailable:
    """Build the error raised when an optional dependency cannot be imported."""
    hint = f"pip install 'yolo-optim[{extra}]'" if extra else f"pip install {package}"
    return BackendUnavailable(f"the '{package}' package is not installed; install it with: {hint}")


def _printable(c: str) -> bool:
    """False for control/format characters, emoji and other pictographs, and emoji variation selectors."""
    if c.isspace():
        return True
    cat = unicodedata.category(c)
    return not (cat.startswith("C") or cat == "So" or "\ufe00" <= c <= "\ufe0f")


def one_line(text: object, limit: int = 160, all_lines: bool = False) -> str:
    """The first line of a (foreign) message without control characters or emoji, shortened at a word boundary with
    '...'. Letters of any script stay: a path or a class name with accents must read as the user wrote it.

    Libraries raise messages with newlines, emoji and ANSI colour codes; a user-facing line needs none of them, and a
    cut in the middle of a word ("UnpicklingEr") reads as a bug. `all_lines` joins every line instead, for runtimes
    (OpenVINO, TensorRT) that put the cause after a generic first line.
    """
    s = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(text))  # ANSI colour codes
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    s = " ".join(lines) if all_lines else next(iter(lines), "")
    s = re.sub(r"\s+", " ", "".join(c for c in s if _printable(c))).strip()
    if len(s) <= limit:
        return s
    cut = s[:limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return f"{cut}..."


def describe(exc: BaseException, limit: int = 160, all_lines: bool = False) -> str:
    """`TypeName: first line of the message` (or just the type name), for wrapping a foreign exception."""
    text = one_line(exc, limit, all_lines)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
