#!/usr/bin/env bash
# Build the TensorRT engine of this bundle with trtexec, on the Jetson that will run it.
# TensorRT 10.x: a strongly typed network (--stronglyTyped), the precision is the graph's (Q/DQ INT8 or fp16);
#   with --dla N: DLA core N with GPU fallback (DLA needs the weakly typed precision flags on TensorRT 10).
# TensorRT 11.x: every network is strongly typed, no precision flag exists; DLA is not offered.
# Writes OUT/model.plan (for trtexec) and OUT/model.engine (Ultralytics' header + plan, for YOLO("model.engine")).
#
#   ./build.sh [--bundle DIR] [--out DIR] [--dla N] [--workspace MIB]   (defaults: this folder, ./run, -, 4096)

# shellcheck source=SCRIPTDIR/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

BUNDLE="$HERE"
OUT="$PWD/run"
DLA=""
WORKSPACE=4096
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE="${2:?--bundle needs a folder}"; shift ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --dla) DLA="${2:?--dla needs a core number}"; shift ;;
        --workspace) WORKSPACE="${2:?--workspace needs MiB}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[ -f "$BUNDLE/metadata.json" ] || die "$BUNDLE is not a yolo-optim bundle (no metadata.json)"
case "$DLA" in ''|*[!0-9]*) [ -z "$DLA" ] || die "--dla takes a core number (0 or 1), not '$DLA'" ;; esac
mkdir -p "$OUT"

TRTEXEC_BIN="$(find_trtexec)"
TRT="$(trt_version)"
check_trt_supported "$TRT"
MAJOR="${TRT%%.*}"
PRECISION="$(meta_get precision)"
ONNX="$BUNDLE/$(meta_get onnx)"

args=("--onnx=$ONNX" "--saveEngine=$OUT/model.plan" "--memPoolSize=workspace:${WORKSPACE}M" --skipInference)
STRONG=1
if [ "$MAJOR" -eq 10 ]; then
    if [ -n "$DLA" ]; then
        STRONG=0
        case "$PRECISION" in
            int8) args+=(--int8 --fp16) ;;  # the Q/DQ scales decide what is int8; fp16 for the rest
            fp16) args+=(--fp16) ;;
            *) die "DLA runs fp16 or int8 only; export the bundle with precision=fp16 or int8" ;;
        esac
        args+=("--useDLACore=$DLA" --allowGPUFallback)
    else
        args+=(--stronglyTyped)
    fi
else
    [ -z "$DLA" ] || die "DLA is not supported by these scripts on TensorRT $TRT (TensorRT 11 dropped DLA on most Jetsons); build without --dla, or use JetPack 6 (TensorRT 10)"
fi

echo "TensorRT $TRT, $PRECISION bundle: trtexec ${args[*]}"
if ! "$TRTEXEC_BIN" "${args[@]}" > "$OUT/build.log" 2>&1; then
    tail -n 20 "$OUT/build.log" >&2
    die "trtexec failed to build the engine (full log: $OUT/build.log)"
fi
[ -s "$OUT/model.plan" ] || die "trtexec reported success but wrote no $OUT/model.plan (see $OUT/build.log)"

wrap=(--bundle "$BUNDLE" --plan "$OUT/model.plan" --engine "$OUT/model.engine" --trt-version "$TRT"
      --strongly-typed "$STRONG" --command "trtexec ${args[*]}")
if [ -n "$DLA" ]; then wrap+=(--dla "$DLA"); fi
"$PY" "$HELPER" wrap-engine "${wrap[@]}"
echo "engine: $OUT/model.engine (YOLO(\"$OUT/model.engine\") loads it); trtexec plan: $OUT/model.plan"
