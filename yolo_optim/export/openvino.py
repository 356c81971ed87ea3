"""OpenVINO backend: FP32 / BF16 / FP16 IRs, INT8 weights-only (NNCF weight compression) and full INT8 (NNCF PTQ).

Precision is a property of the *run* as much as of the file: the CPU plugin executes an FP32 IR in bfloat16 by
default where the CPU supports it. Every artifact therefore records the inference precision it is meant to run at
(`inference_precision_hint`), and `load_runner` compiles it with exactly that hint, so `fp32` really is f32.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cpu import cpu_flags, has_bf16
from ..core.options import ExportOptions
from ..errors import OptimError, missing_extra, one_line
from .artifact import (
    LOG,
    StagedSource,
    artifact_metadata,
    artifact_stem,
    quiet_ultralytics,
)
from .base import (
    Backend,
    Target,
    read_artifact_metadata,
    register_backend,
    write_artifact_metadata,
)
from .calibration import calibration_for
from .graph import find_head_scope, level_grids, openvino_nodes

OV_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
HINT_OF = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # our precision -> OpenVINO inference precision
LABEL_OF = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def device_capabilities(device: str) -> set[str]:
    """OPTIMIZATION_CAPABILITIES of an OpenVINO device (FP32, BF16, FP16, INT8, ...)."""
    return set(_core().get_property(OV_DEVICES[device], "OPTIMIZATION_CAPABILITIES"))


def float_hint(precision: str, device: str) -> str:
    """The inference precision an artifact of `precision` runs at on `device`.

    Float precisions run as labelled. Quantized models keep their non-quantized layers (the head's decode) in f32
    on the CPU, where f32 is exact and those layers are a small share of the time; GPU/NPU run them in f16.
    """
    if precision in HINT_OF:
        return HINT_OF[precision]
    return "f32" if device == "cpu" else "f16"


@register_backend
class OpenVINOBackend(Backend):
    name = "openvino"
    devices = ("cpu", "gpu", "npu")
    precisions = ("fp32", "bf16", "fp16", "int8w", "int8")
    extra = None  # openvino and nncf are core dependencies
    package = "openvino"
    quantization_scheme = "2"  # 2: asymmetric activations (MIXED preset) on CPU and GPU
    fallbacks = ({"accuracy_control": True}, {"float_scope": 1})

    def default_precision(self, device: str) -> str | None:
        """What the plugin runs an FP32 IR at when nobody sets INFERENCE_PRECISION_HINT: bf16 on a CPU with native
        bf16, f16 on GPU and NPU."""
        if device == "cpu":
            return "bf16" if has_bf16() else None
        return "fp16"

    def availability(self, device: str = "cpu") -> tuple[bool, str]:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return False, str(missing_extra("openvino", self.extra))
        if device not in OV_DEVICES:
            return False, f"openvino has no device '{device}'"
        try:
            available = _core().available_devices
        except Exception as e:  # noqa: BLE001 - a broken plugin installation must not crash a listing
            return False, f"openvino cannot list its devices ({type(e).__name__}: {e})"
        if not any(d.split(".")[0] == OV_DEVICES[device] for d in available):
            return False, f"no OpenVINO {OV_DEVICES[device]} device here (available: {', '.join(available)})"
        return True, ""

    def supports(self, target: Target) -> tuple[bool, str]:
        ok, why = super().supports(target)
        if not ok:
            return ok, why
        caps = device_capabilities(target.device)
        need = CAPABILITY.get(target.precision)
        if need and need not in caps:
            return False, (f"the OpenVINO {OV_DEVICES[target.device]} device cannot run {target.precision} "
                           f"(it supports {', '.join(sorted(caps))})")
        if target.precision in ("int8", "int8w"):
            try:
                import nncf  # noqa: F401
            except ImportError:
                return False, str(missing_extra("nncf", self.extra))
        return True, ""

    # ------------------------------------------------------------------------------------------------ export
    def export(self, yolo: Any, target: Target, options: ExportOptions, out_dir: Path) -> Path:
        self.check(target)
        import openvino as ov

        out_dir = Path(out_dir)
        source = StagedSource(yolo, out_dir, options.verbose)
        folder = source.export("openvino", int(options.imgsz), half=target.precision == "fp16")
        xml = next(folder.glob("*.xml"))
        final = out_dir / f"{artifact_stem(source, target)}_openvino_model"
        if final.exists():
            shutil.rmtree(final)
        extra: dict[str, Any] = {}
        if target.precision in HINT_OF:
            shutil.move(str(folder), str(final))
        else:
            model = _core().read_model(str(xml))
            with quiet_ultralytics(options.verbose, "nncf"):
                if target.precision == "int8w":
                    model, extra = self._compress_weights(model)
                else:
                    model, extra = self._quantize(model, source, target, options)
            try:  # an artifact the runtime cannot compile is never written
                _core().compile_model(model, OV_DEVICES[target.device],
                                      {"INFERENCE_PRECISION_HINT": float_hint(target.precision, target.device)})
            except RuntimeError as e:
                raise OptimError(f"OpenVINO cannot compile the {target.precision} model "
                                 f"({one_line(e, 240, all_lines=True)})") from None
            final.mkdir(parents=True)
            ov.save_model(model, str(final / xml.name), compress_to_fp16=False)
            shutil.copyfile(folder / "metadata.yaml", final / "metadata.yaml")
        hint = float_hint(target.precision, target.device)
        executed = LABEL_OF[hint] if target.precision in HINT_OF else target.precision
        meta = artifact_metadata(target, options, source, self.package, inference_precision_hint=hint,
                                 executed_precision=executed, **extra)
        write_artifact_metadata(final, meta)
        source.cleanup()
        return final

    @staticmethod
    def _compress_weights(model: Any) -> tuple[Any, dict[str, Any]]:
        import nncf

        # OpenVINO's CPU plugin (2026.4) cannot compile a weight-compressed 1x1 convolution whose input is one
        # output of a multi-output op (Split in C2f/C3k2 bottlenecks and attention): its
        # ConvertWeightCompressedConv1x1ToMatmul pass throws. Those few layers keep float weights.
        skip = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
                and op.input_value(0).get_node().get_output_size() > 1
                and list(op.input_value(1).get_partial_shape())[2:] == [1, 1]]
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM,
                                      ignored_scope=nncf.IgnoredScope(names=skip, validate=False))
        return model, {"quantization": {"method": "NNCF weight compression, int8 symmetric per output channel",
                                        "activations": "float", "float_weight_layers": len(skip)}}

    def _quantize(self, model: Any, source: StagedSource, target: Target,
                  options: ExportOptions) -> tuple[Any, dict[str, Any]]:
        import nncf

        calib = calibration_for(options)
        level = options.float_scope
        scope = find_head_scope(openvino_nodes(model), level_grids(int(options.imgsz), source.strides))
        ignored = nncf.IgnoredScope(names=scope.names(level), validate=False)
        settings = quantization_settings(target.device)
        common = {"preset": settings["preset"], "target_device": settings["target_device"],
                  "subset_size": len(calib), "ignored_scope": ignored, "fast_bias_correction": True}
        dataset = nncf.Dataset(calib)
        accuracy_control = options.accuracy_control
        if accuracy_control:
            model = self._quantize_with_accuracy_control(model, dataset, options, source, common)
        else:
            model = nncf.quantize(model, dataset, **common)
        info = {"method": "NNCF post-training quantization" + (" with accuracy control" if accuracy_control else ""),
                "preset": settings["preset"].value, "target_device": settings["target_device"].value,
                "float_scope_level": level, "float_nodes": len(scope.names(level))}
        return model, {"calibration": calib.info(), "quantization": info}

    @staticmethod
    def _quantize_with_accuracy_control(model: Any, dataset: Any, options: ExportOptions, source: StagedSource,
                                        common: dict[str, Any]) -> Any:
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedAccuracyRestorerParameters,
        )

        from ..core.images import split_images
        from .calibration import dataset_info
        from .validate import val_callable

        val_images = split_images(dataset_info(options.data), "val")
        work = source.work / "accuracy-control"
        work.mkdir(parents=True, exist_ok=True)

        def validation_fn(compiled: Any, items: Any) -> float:
            subset = [str(p) for p in items]
            listing = work / f"val-{abs(hash(tuple(subset)))}.txt"
            listing.write_text("\n".join(subset) + "\n", encoding="utf-8")
            yaml_path = work / f"{listing.stem}.yaml"
            import yaml

            yaml_path.write_text(yaml.safe_dump({"path": str(work), "train": str(listing), "val": str(listing),
                                                 "names": source.names}), encoding="utf-8")
            result = val_callable(lambda x: list(compiled(x).values()), yaml_path, int(options.imgsz),
                                  source.names, source.task)
            return result.map50_95

        return nncf.quantize_with_accuracy_control(
            model, dataset, nncf.Dataset(val_images), validation_fn, max_drop=float(options.max_drop),
            drop_type=nncf.DropType.ABSOLUTE, advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=options.accuracy_control_iterations), **common)

    # ------------------------------------------------------------------------------------------------ run
    def load_runner(self, artifact: str | Path, threads: int = 0) -> OpenVINORunner:
        ok, why = self.availability("cpu")
        if not ok:
            raise OptimError(f"cannot run {artifact}: {why}")
        return OpenVINORunner(Path(artifact), threads)


def quantization_settings(device: str) -> dict[str, Any]:
    """NNCF settings per device.

    CPU and GPU: symmetric weights, asymmetric activations (MIXED preset). YOLO activations come out of SiLU, whose
    range is about [-0.28, inf): a symmetric 8-bit grid spends half its levels on negatives that never occur. On the
    demo baseline MIXED kept 0.8 point more mAP50-95 than symmetric activations (PERFORMANCE) at the same OpenVINO
    CPU latency (scripts/bench_int8_preset.py, results in scripts/results/bench_int8_preset.json). NPU keeps
    PERFORMANCE, unchanged, since no NPU has measured the difference.
    On CPUs with AMX (Sapphire Rapids and newer) NNCF's CPU_SPR target matches the plugin's AMX int8 kernels.
    """
    import nncf

    target_device = nncf.TargetDevice.CPU_SPR if device == "cpu" and "amx_int8" in cpu_flags() else \
        {"cpu": nncf.TargetDevice.CPU, "gpu": nncf.TargetDevice.GPU, "npu": nncf.TargetDevice.NPU}[device]
    preset = nncf.QuantizationPreset.PERFORMANCE if device == "npu" else nncf.QuantizationPreset.MIXED
    return {"preset": preset, "target_device": target_device}


def _precision_of_foreign_ir(model: Any) -> str:
    """An IR this package did not write: int8 if it holds FakeQuantize ops, int8w if int8 weight constants."""
    types = {op.get_type_name() for op in model.get_ops()}
    if "FakeQuantize" in types:
        return "int8"
    if any(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8")
           for op in model.get_ops()):
        return "int8w"
    return "fp32"


class OpenVINORunner:
    """A model compiled for latency at the inference precision its metadata records."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None)
        if xml is None or not xml.is_file():
            raise OptimError(f"{path} holds no OpenVINO model (.xml); give the folder an export wrote")
        self.metadata = read_artifact_metadata(xml)
        model = _core().read_model(str(xml))
        device = str(self.metadata.get("device", "cpu"))
        precision = str(self.metadata.get("precision") or _precision_of_foreign_ir(model))
        hint = self.metadata.get("inference_precision_hint") or float_hint(precision, device)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        if threads > 0 and device == "cpu":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = _core().compile_model(model, OV_DEVICES.get(device, "CPU"), config)
        self.request = self.compiled.create_infer_request()
        try:  # the count the compiled model really uses (the plugin's own choice when none was asked)
            self.threads_used: int | None = int(self.compiled.get_property("INFERENCE_NUM_THREADS")) or None
        except RuntimeError:  # GPU/NPU plugins have no such property
            self.threads_used = None
        run_type = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        ran = LABEL_OF.get(getattr(run_type, "get_type_name", lambda: str(run_type))(), LABEL_OF.get(hint, hint))
        self.executed_precision = ran if precision in HINT_OF else precision
        if precision in HINT_OF and ran != precision:
            LOG.warning("%s is labelled %s but OpenVINO runs it at %s", path, precision, ran)
        shape = model.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else -1 for d in shape)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.request.infer({0: x}, share_inputs=True).values())
