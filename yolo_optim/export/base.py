"""The export/runtime contract: a Target names where a model runs, a Backend exports to it and runs what it exported.

One module per backend (onnxruntime.py, openvino.py, tensorrt.py, torch.py) subclasses `Backend` and registers it with
`@register_backend`. Backend modules import their runtime (openvino, onnxruntime, tensorrt) only inside methods, so
`get_backend("tensorrt")` works everywhere and `availability()` says why a backend cannot run here.

Every artifact embeds its metadata where Ultralytics keeps its own (ONNX metadata_props, OpenVINO metadata.yaml,
the TensorRT engine's JSON header), under the single key `yolo_optim`: Ultralytics turns every top-level metadata
key into a backend attribute, so our keys (device, precision, ...) must not sit beside its own.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..core.options import ExportOptions
from ..errors import OptimError
from ..registry import BACKENDS, suggest

# Every precision a backend may declare, in the order tables list them. int8w: weights-only INT8; int8: weights and
# activations. A backend's own `precisions` say which of them it produces; a new one is added here and in a backend.
PRECISIONS = ("fp32", "bf16", "fp16", "int8w", "int8")
META_KEY = "yolo_optim"  # the one metadata key holding our fields inside an artifact


@dataclass(frozen=True)
class Target:
    """Where and how a model runs: backend + device + precision, written `openvino-cpu:int8`."""

    backend: str  # a registered backend: onnxruntime, openvino, tensorrt, torch, ...
    device: str  # a device the backend declares: cpu, gpu, npu, ...
    precision: str = "fp32"  # a precision some registered backend declares: fp32, bf16, fp16, int8w, int8, ...

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptimError(f"unknown backend '{self.backend}'{suggest(self.backend, BACKENDS.names())}; "
                             f"valid targets: {', '.join(all_runtimes())}")
        known = all_precisions()
        if self.precision not in known:
            raise OptimError(f"unknown precision '{self.precision}'{suggest(self.precision, known)}; "
                             f"choose one of {', '.join(known)}")

    @classmethod
    def parse(cls, text: str | Target, precision: str | None = None) -> Target:
        """`openvino-cpu:int8`, or `openvino-cpu` with `precision=`; a precision given both ways must agree."""
        if isinstance(text, Target):
            return text if precision is None else cls(text.backend, text.device, precision)
        raw = str(text).strip().lower()
        runtime, _, prec = raw.partition(":")
        if prec and precision and prec != precision:
            raise OptimError(f"target '{text}' says precision {prec} but precision={precision}; give it once")
        backend, sep, device = runtime.rpartition("-")
        if not sep or not backend or not device:
            raise OptimError(f"target '{text}' is not <backend>-<device>[:<precision>]; "
                             f"valid targets: {', '.join(all_runtimes())}")
        target = cls(backend, device, prec or precision or "fp32")
        devices = get_backend(backend).devices
        if device not in devices:
            raise OptimError(f"unknown device '{device}' for backend {backend}; valid targets: "
                             f"{', '.join(f'{backend}-{d}' for d in devices)}")
        return target

    @property
    def runtime(self) -> str:
        """`openvino-cpu`: the target without its precision."""
        return f"{self.backend}-{self.device}"

    @property
    def name(self) -> str:
        """`openvino-cpu:int8`: the canonical text form, accepted by `Target.parse`."""
        return f"{self.runtime}:{self.precision}"

    def __str__(self) -> str:
        return self.name


@runtime_checkable
class Runner(Protocol):
    """Raw inference on one loaded artifact, for latency measurement (no pre- or post-processing)."""

    input_shape: tuple[int, ...]  # NCHW shape the artifact was built for
    executed_precision: str  # what the runtime really runs at, e.g. "bf16" for an OpenVINO model run in bfloat16

    def __call__(self, x: np.ndarray) -> Any:  # x: NCHW float32 in [0, 1]
        ...


class Backend:
    """One inference runtime: what it supports, how to export to it, how to run its artifacts."""

    name: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ()
    precisions: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None  # pip extra that installs the runtime, named when it is missing
    package: ClassVar[str] = ""  # the Python package the runtime is imported from
    # Bumped when the backend quantizes differently for the same settings, so cached INT8 artifacts are not reused.
    quantization_scheme: ClassVar[str] = "1"
    # What the strict accuracy guard retries, in order, when an INT8 export loses too much mAP: each dict holds
    # export-job overrides (accuracy_control=True: NNCF's accuracy-aware quantization; float_scope=1: keep the
    # head's prediction convolutions and the stem in float too).
    fallbacks: ClassVar[tuple[dict[str, Any], ...]] = ()
    # The precision the runtime runs a plain (un-quantized) export at on each device when nobody asks, where it is
    # not fp32 (OpenVINO runs an FP32 IR in bf16 on a CPU with bf16): the benchmark's default targets include it, so
    # a speed-up is shown against what the user would otherwise get. Called with the device; None = fp32.
    def default_precision(self, device: str) -> str | None:
        return None


    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        """(True, "") when the runtime and the device are usable here, else (False, the reason). Never raises."""
        raise NotImplementedError

    def supports(self, target: Target) -> tuple[bool, str]:
        """Whether this backend can produce and run `target` on this machine, with the reason when not."""
        if target.device not in self.devices:
            return False, f"{self.name} has no device '{target.device}' (it has {', '.join(self.devices)})"
        if target.precision not in self.precisions:
            return False, (f"{self.name} does not support precision {target.precision} "
                           f"(it supports {', '.join(self.precisions)})")
        return self.availability(target.device)

    def check(self, target: Target) -> None:
        """Raise a one-line OptimError when `target` cannot be exported or run here."""
        ok, why = self.supports(target)
        if not ok:
            raise OptimError(f"cannot export to {target.name}: {why}")

    def export(self, yolo: Any, target: Target, options: ExportOptions, out_dir: Path) -> Path:
        """Write the artifact for `target` inside `out_dir`; return the path `YOLO(path)` loads.

        `options` says everything the export depends on beside the model (input size, calibration, float scope);
        defaults such as the dataset are resolved by the caller, never here.
        """
        raise NotImplementedError

    def load_runner(self, artifact: str | Path, threads: int = 0) -> Runner:
        """Load an artifact for raw inference at the precision its metadata records; threads=0: runtime default."""
        raise NotImplementedError


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator adding a Backend subclass to the BACKENDS registry under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    return BACKENDS.register(cls.name, cls)


def get_backend(name: str) -> Backend:
    """The backend registered as `name` (importing its module, not its runtime)."""
    return BACKENDS.get(name)()


def list_backends() -> list[str]:
    """Names of every registered backend, available here or not (see `Backend.availability`)."""
    return BACKENDS.names()


def all_runtimes() -> list[str]:
    """Every `<backend>-<device>` pair the registered backends declare."""
    return [f"{name}-{d}" for name, cls in BACKENDS.items() for d in cls.devices]


def all_precisions() -> list[str]:
    """Every precision some registered backend declares, known ones in PRECISIONS order, new ones after."""
    declared = {p for _, cls in BACKENDS.items() for p in cls.precisions}
    return [p for p in PRECISIONS if p in declared] + sorted(declared - set(PRECISIONS))


def backend_of_artifact(path: str | Path) -> str:
    """Which backend runs an artifact, from its file type (the metadata confirms it when present)."""
    p = Path(path)
    meta = read_artifact_metadata(p)
    if meta.get("backend") in BACKENDS:
        return meta["backend"]
    if p.suffix == ".onnx":
        return "onnxruntime"
    if p.suffix in (".engine", ".plan"):
        return "tensorrt"
    if p.suffix == ".xml" or (p.is_dir() and any(p.glob("*.xml"))):
        return "openvino"
    if p.suffix == ".pt":
        return "torch"
    raise OptimError(f"{path} is not an artifact of a known backend (.onnx, OpenVINO folder, .engine, .pt)")


# --------------------------------------------------------------------------------------------------- metadata
def read_artifact_metadata(path: str | Path) -> dict[str, Any]:
    """Ultralytics' metadata of an artifact with our fields merged on top (precision, backend, source_sha256, ...).

    Works without importing any runtime; returns {} for a file with no metadata.
    """
    p = Path(path)
    raw = _read_raw_metadata(p)
    if not raw:
        return {}
    out = dict(raw)
    ours = out.pop(META_KEY, None)
    for k in ("imgsz", "names", "args", "kpt_shape"):  # ONNX stores them as Python literals
        if isinstance(out.get(k), str):
            try:
                out[k] = ast.literal_eval(out[k])
            except (ValueError, SyntaxError):
                pass
    if isinstance(ours, str):
        ours = json.loads(ours)
    out.update(ours or {})
    if isinstance(out.get("names"), dict):  # JSON turned the class indices into strings
        out["names"] = {int(k) if str(k).isdigit() else k: v for k, v in out["names"].items()}
    return out


def _read_raw_metadata(p: Path) -> dict[str, Any]:
    try:
        if p.suffix == ".onnx":
            return _onnx_props(p)
        if p.suffix in (".engine", ".plan"):
            return _engine_header(p)[1]
        if p.suffix == ".pt":
            return _torch_meta(p)
        sidecar = (p if p.is_dir() else p.parent) / "metadata.yaml"
        if sidecar.exists():
            import yaml

            return yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError) as e:
        raise OptimError(f"cannot read the metadata of {p} ({type(e).__name__}: {e}); is it a complete artifact?") \
            from None
    return {}


def _onnx_props(p: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(p), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def onnx_metadata(path: Path) -> dict[str, Any]:
    """An ONNX file's metadata_props (Ultralytics' stride, names, imgsz, ... and ours)."""
    return _onnx_props(Path(path))


def restore_onnx_metadata(dst: Path, props: dict[str, Any]) -> None:
    """Quantizers and converters drop metadata_props: put `props` (read from the graph they started from) back into
    `dst` where it lacks them, so YOLO(dst) loads it."""
    import onnx

    model = onnx.load(str(dst))
    have = {p.key for p in model.metadata_props}
    for k, v in props.items():
        if k not in have:
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
    onnx.save(model, str(dst))


def _engine_header(p: Path) -> tuple[int, dict[str, Any]]:
    """Ultralytics' engine layout: 4-byte little-endian JSON length, the JSON, then the serialized engine."""
    with open(p, "rb") as f:
        n = int.from_bytes(f.read(4), byteorder="little", signed=True)
        size = f.seek(0, 2)
        if 0 < n <= size - 4:
            f.seek(4)
            try:
                return 4 + n, json.loads(f.read(n))
            except (ValueError, UnicodeDecodeError):
                pass
    return 0, {}


def _torch_meta(p: Path) -> dict[str, Any]:
    """Metadata of a .pt checkpoint: the model's names/task/imgsz plus what we stored under META_KEY.

    Read without executing the file's pickle (core.checkpoint): metadata never needs the model's code or tensors.
    """
    from ..core.checkpoint import read_checkpoint_dict

    ckpt = read_checkpoint_dict(p)
    if not isinstance(ckpt, dict):
        return {}
    model = ckpt.get("ema") or ckpt.get("model")
    args = ckpt.get("train_args") or {}
    out = {"task": getattr(model, "task", None) or args.get("task"), "names": getattr(model, "names", None),
           "imgsz": args.get("imgsz"), "args": args}
    if META_KEY in ckpt:
        out[META_KEY] = ckpt[META_KEY]
    return out


def write_artifact_metadata(artifact: str | Path, ours: dict[str, Any]) -> None:
    """Embed `ours` under META_KEY in an artifact in place (call it inside the temporary export folder)."""
    p = Path(artifact)
    if p.suffix == ".onnx":
        import onnx

        model = onnx.load(str(p))
        props = [prop for prop in model.metadata_props if prop.key != META_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(props)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(ours, default=str)
        onnx.save(model, str(p))
    elif p.suffix in (".engine", ".plan"):
        offset, header = _engine_header(p)
        body = p.read_bytes()[offset:]
        header[META_KEY] = ours
        blob = json.dumps(header, default=str).encode()
        p.write_bytes(len(blob).to_bytes(4, byteorder="little", signed=True) + blob + body)
    else:
        import yaml

        sidecar = (p if p.is_dir() else p.parent) / "metadata.yaml"
        meta = yaml.safe_load(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
        meta[META_KEY] = _plain(ours)  # plain types only in the YAML
        sidecar.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _plain(obj: Any) -> Any:
    """Plain YAML types (dict keys kept as they are, so class indices stay integers)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


