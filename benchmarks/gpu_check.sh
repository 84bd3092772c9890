#!/usr/bin/env bash
# Every GPU figure the project tracks, in one run that fits 8 minutes on one H200:
#
#   bash benchmarks/gpu_check_prepare.sh          # first, HERE (dm-clrs installed): the data
#   bash benchmarks/gpu_check.sh                  # on the GPU machine, with .gpu_data/ carried
#   bash benchmarks/gpu_check.sh --smoke          # every part shrunk to seconds (a CPU check)
#   GPU_CHECK_PARTS="step_cost table13" bash benchmarks/gpu_check.sh     # some parts only
#
# Parts, each under its own `timeout` (seconds, the second column of PARTS below; a part that runs
# out prints what it had and the next part starts):
#   vmap        benchmarks/vmap_loss_check.py: vmapped loss/gradient = each seed's own
#   canary      benchmarks/canary_cost.py: the numerical canary's cost against a training task
#   step_cost   benchmarks/step_cost.py: one seed's step, materialised vs low-rank (hidden 128/16/4)
#   population  benchmarks/population.py: seed-steps/s, low-rank, hidden 128 × 1..256, 4 × 1..1024
#   pop_ratio   benchmarks/population.py: materialised vs low-rank at one population
#   table13     benchmarks/table13_slice.py: Table 13's bfs_default, 1,024 seeds, 300 steps
#   fresh_gen   benchmarks/data_pool.py --jax-only: the JAX generators' graphs/s at n = 16 and 64
#   fresh_step  benchmarks/fresh_step.py --fresh-only: the fresh-data step and its generation share
#
# The GPU machine has no dm-clrs, so it cannot build data: every cache entry comes from
# $GPU_CHECK_DATA (default: .gpu_data/ in the repo, git-ignored), which gpu_check_prepare.sh fills
# by running this script with GPU_CHECK_DATA_ONLY=1 (each part's --data-only: the same requests).
# Environment: PYTHON (default python3; may hold a wrapper, e.g. "python
# benchmarks/without_dmclrs.py"), GPU_CHECK_SMOKE=1 (= --smoke), GPU_CHECK_PARTS, GPU_CHECK_DATA,
# GPU_CHECK_TIMEOUT_PERCENT (scales every timeout; default 100), OUT (when set, everything printed
# is also appended to $OUT/gpu_check.log).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 1
SMOKE=${GPU_CHECK_SMOKE:-0}
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        *) echo "gpu_check.sh: unknown argument $arg (allowed: --smoke)" >&2; exit 2 ;;
    esac
done
DATA_ONLY=${GPU_CHECK_DATA_ONLY:-0}
read -ra PY <<< "${PYTHON:-python3}"
export GAPSWEEP_CACHE_DIR=${GPU_CHECK_DATA:-$REPO/.gpu_data}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

if [[ -n "${OUT:-}" && $DATA_ONLY != 1 ]]; then
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu_check.log") 2>&1
    TEE_PID=$!
fi

B=benchmarks
if [[ $SMOKE == 1 ]]; then
    # name | timeout s | command (shrunk: tiny grids, a few steps, hidden 4)
    PARTS=(
        "vmap|900|$B/vmap_loss_check.py --algorithms bfs --populations 2 --graphs 4"
        "canary|900|$B/canary_cost.py --algorithms bfs --population 2 --steps 2 --hidden 4 --pool-size 32"
        "step_cost|900|$B/step_cost.py --algorithms bfs --hidden 4 --reps 2 --population 1,2 --population-hidden 4 --population-steps 2 --population-eval-every 1 --population-pool 32"
        "population|900|$B/population.py --grid 4:1,2 --steps 2 --eval-every 1 --pool-size 32 --edge-path low_rank"
        "pop_ratio|900|$B/population.py --grid 4:2 --steps 2 --eval-every 1 --pool-size 32 --edge-path materialised,low_rank"
        "table13|900|$B/table13_slice.py --seeds 4 --steps 4 --eval-every 2 --population 2"
        "fresh_gen|900|$B/data_pool.py --jax-only --algorithms bfs --sizes 4 --count16 8 --reps 1"
        "fresh_step|900|$B/fresh_step.py --fresh-only --algorithms bfs --hidden 4 --population 2 --reps 2 --n 4"
    )
else
    # 470 s of timeouts in all; start-up and headers take the rest of the 8 minutes
    PARTS=(
        "vmap|25|$B/vmap_loss_check.py --algorithms bfs,dfs --populations 8,64,256 --graphs 16"
        "vmap|20|$B/vmap_loss_check.py --algorithms bfs_seq --populations 8,32 --graphs 16"
        "canary|60|$B/canary_cost.py --algorithms bfs,bellman_ford --population 32 --steps 10"
        "step_cost|80|$B/step_cost.py --algorithms bfs,bellman_ford,dfs --hidden 128,16,4 --reps 20 --population none"
        "population|75|$B/population.py --grid 128:1,8,32,128,256 --steps 100 --pool-size 512 --edge-path low_rank"
        "population|50|$B/population.py --grid 4:1,128,1024 --steps 100 --pool-size 512 --edge-path low_rank"
        "pop_ratio|40|$B/population.py --grid 128:32 --steps 100 --pool-size 512 --edge-path materialised,low_rank"
        "table13|60|$B/table13_slice.py --label bfs_default --seeds 1024 --steps 300"
        "fresh_gen|20|$B/data_pool.py --jax-only --count16 16384 --count64 4096"
        "fresh_step|40|$B/fresh_step.py --fresh-only --algorithms bfs,bellman_ford,dfs --hidden 128 --population 1,32 --reps 10"
    )
fi

selected() {   # whether part $1 is in GPU_CHECK_PARTS (all parts when it is unset or empty)
    [[ -z "${GPU_CHECK_PARTS:-}" || " $GPU_CHECK_PARTS " == *" $1 "* ]]
}

echo "=== gpu_check $(date -u +%FT%TZ) smoke=$SMOKE data_only=$DATA_ONLY data=$GAPSWEEP_CACHE_DIR"
if [[ $DATA_ONLY != 1 ]]; then
    echo "+ git rev-parse HEAD: $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
    if command -v nvidia-smi >/dev/null; then
        echo "+ nvidia-smi"
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    fi
    echo "+ ${PY[*]} (versions)"
    timeout 60 "${PY[@]}" -c 'import sys, workers, jax; print("python", sys.version.split()[0], "| jax", jax.__version__, "|", jax.devices(), "| XLA_FLAGS", __import__("os").environ.get("XLA_FLAGS"))'
fi

SUMMARY=()
FAILED=0
for part in "${PARTS[@]}"; do
    IFS='|' read -r name limit command <<< "$part"
    selected "$name" || continue
    read -ra argv <<< "$command"
    limit=$((limit * ${GPU_CHECK_TIMEOUT_PERCENT:-100} / 100))
    if [[ $DATA_ONLY == 1 ]]; then
        argv+=(--data-only)
        limit=3600
    fi
    echo
    echo "=== [$name] (timeout ${limit}s)"
    echo "+ timeout $limit ${PY[*]} ${argv[*]}"
    start=$SECONDS
    timeout -k 10 "$limit" "${PY[@]}" "${argv[@]}"
    rc=$?
    seconds=$((SECONDS - start))
    case $rc in
        0) verdict=ok ;;
        124|137) verdict="TIMED OUT after ${limit}s (the lines above are what it finished)" ;;
        *) verdict="FAILED (exit $rc)" ;;
    esac
    [[ $rc != 0 ]] && FAILED=1
    echo "=== [$name] $verdict, ${seconds}s"
    SUMMARY+=("$(printf '%-11s %5ss  %s' "$name" "$seconds" "$verdict")")
done

echo
echo "=== summary (${SECONDS}s in all)"
printf '%s\n' "${SUMMARY[@]}"
if [[ -n "${TEE_PID:-}" ]]; then
    exec >&- 2>&-
    wait "$TEE_PID" 2>/dev/null
fi
exit $FAILED
