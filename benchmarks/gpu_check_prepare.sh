#!/usr/bin/env bash
# Builds, HERE (where dm-clrs is installed), every data-cache entry benchmarks/gpu_check.sh reads,
# into $GPU_CHECK_DATA (default .gpu_data/ in the repo, git-ignored), which then travels to the
# GPU machine in the device call's carry (64 MiB in all: the folder must stay well under 50 MiB):
#
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check_prepare.sh           # gpu_check.sh's data
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check_prepare.sh --smoke   # gpu_check.sh --smoke's
#
# 1. runs gpu_check.sh with GPU_CHECK_DATA_ONLY=1: each part's own --data-only, so exactly the
#    requests the real run makes are built (or loaded and checksum-verified);
# 2. runs that again through benchmarks/without_dmclrs.py, as the GPU machine will: every entry
#    must be found by its manifest, with no dm-clrs to build a missing one;
# 3. prints the folder's size and fails above 45 MiB.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GPU_CHECK_DATA=${GPU_CHECK_DATA:-$REPO/.gpu_data}
PYTHON=${PYTHON:-python3}
LIMIT_MIB=45

echo "=== building into $GPU_CHECK_DATA"
GPU_CHECK_DATA_ONLY=1 PYTHON="$PYTHON" bash "$REPO/benchmarks/gpu_check.sh" "$@"
echo
echo "=== checking it as a machine without dm-clrs reads it"
GPU_CHECK_DATA_ONLY=1 PYTHON="$PYTHON $REPO/benchmarks/without_dmclrs.py" \
    bash "$REPO/benchmarks/gpu_check.sh" "$@"
echo
entries=$(find "$GPU_CHECK_DATA" -name '*.npz' | wc -l)
kib=$(du -sk "$GPU_CHECK_DATA" | cut -f1)
echo "=== $GPU_CHECK_DATA: $entries entries, $((kib / 1024)) MiB ($kib KiB)"
find "$GPU_CHECK_DATA" -name '*.npz' -printf '%8k KiB  %P\n' | sort -k3
if (( kib > LIMIT_MIB * 1024 )); then
    echo "too large for the device call's carry (limit here: $LIMIT_MIB MiB)" >&2
    exit 1
fi
