"""The one exception type for mistakes a user can fix; the CLI prints it in one line and exits 2."""


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
