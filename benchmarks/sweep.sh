#!/usr/bin/env bash
# The paper recipe's train step under several compute switches, one benchmark run each, on this machine's
# accelerator. Each run's full output goes to OUTDIR/<variant>.log; the first also writes a profile trace
# and its summary (benchmarks/profile_summary.py).
#
#   bash benchmarks/sweep.sh OUTDIR [PER_DEVICE_BATCH] [VARIANT ...]
#
# A variant is `recipe` (experiments/configs/lawm_yt1b.py as written: bf16, bf16 encoder, scan, remat full)
# or comma-separated `key=value` overrides of model.compute, e.g. `remat=dots` or `remat=none,attention=cudnn`.
# RUN_TIMEOUT_S (default 300) bounds each run; CONFIG (default lawm_yt1b.py:noisy-high) picks the config.
set -u
out=${1:?usage: sweep.sh OUTDIR [PER_DEVICE_BATCH] [VARIANT ...]}
batch=${2:-16}
shift $(($# < 2 ? $# : 2))
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(recipe remat=dots remat=none)
config=${CONFIG:-experiments/configs/lawm_yt1b.py:noisy-high}
mkdir -p "$out"
first=1
for variant in "${variants[@]}"; do
  args=()
  if [ "$variant" != recipe ]; then
    IFS=, read -ra pairs <<<"$variant"
    for pair in "${pairs[@]}"; do args+=("--config.model.compute.$pair"); done
  fi
  name=b${batch}_${variant//[=,]/_}
  profile=()
  [ $first -eq 1 ] && profile=(--profile="$out/trace_$name")
  echo "=== $name: ${args[*]:-} ${profile[*]:-}"
  timeout "${RUN_TIMEOUT_S:-300}" python benchmarks/train_step.py --config="$config" \
    --per_device_batch="$batch" "${args[@]}" "${profile[@]}" >"$out/$name.log" 2>&1
  echo "exit $?"
  grep -v '^[IWE][0-9]\{4\} ' "$out/$name.log" | tail -n 14
  if [ $first -eq 1 ] && [ -d "$out/trace_$name" ]; then
    python benchmarks/profile_summary.py "$out/trace_$name" --top=30 >"$out/profile_$name.md" 2>&1
    head -n 45 "$out/profile_$name.md"
  fi
  first=0
done
