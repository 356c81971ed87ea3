#!/usr/bin/env bash
# Report the Jetson's JetPack/L4T, TensorRT, CUDA, module and power mode; with --max-perf, switch to the fastest
# power mode listed in /etc/nvpmodel.conf and lock the clocks (jetson_clocks). Writes OUT/setup.json.
#
#   ./setup.sh [--max-perf] [--out DIR]        (default DIR: ./run)

# shellcheck source=SCRIPTDIR/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MAX_PERF=0
OUT="$PWD/run"
while [ $# -gt 0 ]; do
    case "$1" in
        --max-perf) MAX_PERF=1 ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
mkdir -p "$OUT"

RELEASE_FILE="${NV_TEGRA_RELEASE:-/etc/nv_tegra_release}"
MODEL_FILE="${DEVICE_TREE_MODEL:-/proc/device-tree/model}"
CONF="${NVPMODEL_CONF:-/etc/nvpmodel.conf}"
[ -r "$RELEASE_FILE" ] || die "$RELEASE_FILE not found: this does not look like a Jetson running JetPack"

# "# R36 (release), REVISION: 4.3, GCID: ..." -> 36.4.3
L4T="$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\),.*/\1.\2/p' "$RELEASE_FILE" | head -n 1)"
JETPACK="$(dpkg-query -W -f='${Version}' nvidia-jetpack 2>/dev/null | cut -d- -f1 || true)"
if [ -z "$JETPACK" ]; then
    case "$L4T" in
        36.*) JETPACK="6.x" ;;
        38.*) JETPACK="7.x" ;;
        *) JETPACK="" ;;
    esac
fi
MODULE="$(tr -d '\0' < "$MODEL_FILE" 2>/dev/null || true)"
CUDA="$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p' || true)"
if [ -z "$CUDA" ] && [ -r /usr/local/cuda/version.json ]; then
    CUDA="$("$PY" -c 'import json; print(json.load(open("/usr/local/cuda/version.json"))["cuda"]["version"])' \
        2>/dev/null || true)"
fi
TRT="$(trt_version)"
check_trt_supported "$TRT"

if [ "$MAX_PERF" -eq 1 ]; then
    [ -r "$CONF" ] || die "$CONF not found: cannot tell which power mode is the fastest on this module"
    read -r MODE_ID MODE_NAME < <("$PY" "$HELPER" max-perf-mode "$CONF")
    echo "power mode: switching to $MODE_NAME (id $MODE_ID, from $CONF)"
    # nvpmodel asks before a mode change that needs a reboot; answering no keeps this script unattended.
    echo no | as_root nvpmodel -m "$MODE_ID" || die "nvpmodel -m $MODE_ID failed"
    as_root jetson_clocks || die "jetson_clocks failed"
    as_root jetson_clocks --show > "$OUT/clocks.txt" 2>&1 || true
fi

# nvpmodel -q prints "NV Power Mode: MAXN" and then the mode id.
QUERY="$(nvpmodel -q 2>/dev/null || true)"
POWER_MODE="$(echo "$QUERY" | sed -n 's/^NV Power Mode: *//p' | head -n 1)"
POWER_ID="$(echo "$QUERY" | grep -E '^[0-9]+$' | head -n 1 || true)"

"$PY" "$HELPER" setup-json --out "$OUT/setup.json" --module "$MODULE" --l4t "$L4T" --jetpack "$JETPACK" \
    --trt "$TRT" --cuda "$CUDA" --power-mode "$POWER_MODE" --power-mode-id "$POWER_ID" --max-perf "$MAX_PERF" \
    --clocks-file "$OUT/clocks.txt"

echo "module:     ${MODULE:-unknown}"
echo "L4T:        ${L4T:-unknown} (JetPack ${JETPACK:-unknown})"
echo "TensorRT:   $TRT"
echo "CUDA:       ${CUDA:-unknown}"
echo "power mode: ${POWER_MODE:-unknown} (id ${POWER_ID:-?})$([ "$MAX_PERF" -eq 1 ] && echo ', clocks locked by jetson_clocks')"
echo "recorded in $OUT/setup.json"
