"""The versioned results.json format: the JSON Schema shipped beside this module, and its validation.

Version 1 is described field by field in `results.schema.json` (each property has a `description`). Any change
that an older reader could not read bumps SCHEMA_VERSION; readers refuse newer versions with a clear message.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import OptimError, missing_extra, one_line

SCHEMA_ID = "yolo-optim/benchmark-results"
SCHEMA_VERSION = 1
SCHEMA_FILE = "results.schema.json"


def schema_path() -> Path:
    """The JSON Schema file of results.json (shipped in the package)."""
    return Path(str(resources.files("yolo_optim.report").joinpath(SCHEMA_FILE)))


@functools.lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


def validate_results(obj: Any, source: str = "results.json") -> None:
    """Raise OptimError naming the first problem when `obj` is not valid benchmark results; else return None."""
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA_ID:
        raise OptimError(f"{source} is not yolo-optim benchmark results (no \"schema\": \"{SCHEMA_ID}\"); "
                         "pass a results.json written by `yolo-optim benchmark`")
    version = obj.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise OptimError(f"{source} has schema version {version}, newer than this yolo-optim reads "
                         f"({SCHEMA_VERSION}); upgrade yolo-optim")
    try:
        import jsonschema
    except ImportError:
        raise missing_extra("jsonschema") from None
    validator = jsonschema.Draft202012Validator(results_schema())
    error = next(iter(sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise OptimError(f"{source} does not match the results schema v{SCHEMA_VERSION} at {where}: "
                         f"{one_line(error.message, 200)}")


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and validate results.json from a file or a run folder."""
    p = Path(path)
    file = p / "results.json" if p.is_dir() else p
    if not file.is_file():
        raise OptimError(f"{path} holds no results.json; give a benchmark run folder or its results.json")
    try:
        obj = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise OptimError(f"{file} is not readable JSON ({type(e).__name__}); rerun the benchmark to rewrite it") \
            from None
    validate_results(obj, source=str(file))
    return obj
