#!/usr/bin/env bash
# Time the engine with trtexec (CUDA graph, no host<->device copies, profiling in a separate run), then run it
# again under tegrastats for power (mean VDD_IN, energy per inference), then mAP with Ultralytics' validator when
# --data is given. Writes RUN/results.json in yolo-optim's benchmark schema: copy the run folder to the host and
# merge it with `yolo-optim report runs=<host run>,<this run folder>`.
#
#   ./bench.sh [--bundle DIR] [--run DIR] [--data data.yaml] [--duration S] [--interval MS] [--label NAME]
#   (defaults: this folder, ./run (where build.sh wrote the engine), no mAP, 10 s, 100 ms, the source's name)

# shellcheck source=SCRIPTDIR/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

BUNDLE="$HERE"
RUN="$PWD/run"
DATA=""
DURATION=10
INTERVAL=100
LABEL=""
COMMAND="bench.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE="${2:?--bundle needs a folder}"; shift ;;
        --run) RUN="${2:?--run needs a folder}"; shift ;;
        --data) DATA="${2:?--data needs a data.yaml}"; shift ;;
        --duration) DURATION="${2:?--duration needs seconds}"; shift ;;
        --interval) INTERVAL="${2:?--interval needs milliseconds}"; shift ;;
        --label) LABEL="${2:?--label needs a name}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
[ -f "$BUNDLE/metadata.json" ] || die "$BUNDLE is not a yolo-optim bundle (no metadata.json)"
[ -s "$RUN/model.plan" ] || die "no engine in $RUN: run ./build.sh --out $RUN first"
[ -z "$DATA" ] || [ -f "$DATA" ] || die "--data $DATA does not exist"
TRTEXEC_BIN="$(find_trtexec)"
check_trt_supported "$(trt_version)"

nvpmodel -q 2>/dev/null | head -n 1 | sed 's/^NV Power Mode: *//' > "$RUN/power_mode.txt" || true

echo "timing: trtexec --loadEngine=$RUN/model.plan for ${DURATION} s"
"$TRTEXEC_BIN" "--loadEngine=$RUN/model.plan" --useCudaGraph --noDataTransfers --separateProfileRun \
    --warmUp=1000 "--duration=$DURATION" "--exportTimes=$RUN/times.json" > "$RUN/timing.log" 2>&1 \
    || die "trtexec failed to run the engine (see $RUN/timing.log)"

if command -v tegrastats >/dev/null 2>&1; then
    echo "power: the same run under tegrastats every ${INTERVAL} ms"
    tegrastats --interval "$INTERVAL" --logfile "$RUN/tegrastats.log" &
    STATS_PID=$!
    trap 'kill "$STATS_PID" 2>/dev/null || true' EXIT
    sleep 1  # tegrastats' first sample before the load starts
    "$TRTEXEC_BIN" "--loadEngine=$RUN/model.plan" --useCudaGraph --noDataTransfers --warmUp=1000 \
        "--duration=$DURATION" > "$RUN/power_run.log" 2>&1 || die "trtexec failed (see $RUN/power_run.log)"
    kill "$STATS_PID" 2>/dev/null || true
    wait "$STATS_PID" 2>/dev/null || true
    trap - EXIT
else
    echo "power: tegrastats not found, no power figures" >&2
    rm -f "$RUN/tegrastats.log"
fi

if [ -n "$DATA" ]; then
    echo "mAP: Ultralytics' validator on $RUN/model.engine with $DATA"
    "$PY" "$HELPER" val --bundle "$BUNDLE" --engine "$RUN/model.engine" --data "$DATA" --out "$RUN/map.json"
fi

"$PY" "$HELPER" results --bundle "$BUNDLE" --run "$RUN" --out "$RUN/results.json" --label "$LABEL" \
    --command "$COMMAND" --duration "$DURATION"
echo "results: $RUN/results.json"
