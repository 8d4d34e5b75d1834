#!/usr/bin/env bash
# Everything issue 22 asks of a GPU in one time-boxed command (~9 minutes on a fresh H200):
#   0. the environment (modules the benchmarks import, versions, the device), after installing .wheels/*.whl
#      (bash benchmarks/gpu_wheels.sh fills it here; the device call carries it) into a scratch folder;
#   a. the paper recipe's train step (lawm_yt1b.py:noisy-high, 16 frames, 256 px, frozen ViT-L encoder in
#      the step) at per-device batch 16, 32 and 64: step time, clips/s, TFLOP/s, MFU, peak device memory;
#   b. compute switches at batch 16 (remat dots / none, cuDNN attention, no scan), as far as time allows;
#   c. numerics: bf16 + fused (and cuDNN) attention vs float32 + einsum on one fixed batch (numerics_check.py);
#   d. encoder_throughput.py --preset=vitl --dtype=bfloat16 against transformers' VJEPA2Model;
#   e. a profile summary of the fastest train-step run (profile_summary.py), from the compilation cache.
#
#   bash benchmarks/gpu_check.sh [--tiny] [OUT_DIR]        # OUT_DIR: default $OUT, else ./gpu_check_out
#
# OUT_DIR gets at most 5 files (the device tool returns 8): summary.md and summary.json (a row per step),
# logs.tar.gz (every step's log and JSON; rewritten after each step, so a kill keeps what ran), profile.md
# and trace.json.gz (when under 15 MiB). Each step runs under `timeout`, capped by its own limit and by
# what is left of GPU_CHECK_BUDGET_S (default 525 s; the profile's share is kept back for it); a step that
# fails, times out or finds no time left is recorded as such and the script goes on. Exit status 1 if a
# step failed or timed out. Scratch (logs, compilation cache, trace) goes to GPU_CHECK_WORK (default: a
# new temporary folder). --tiny (or GPU_CHECK_TINY=1): the same steps on the CPU with a tiny model, 2
# steps each, no wheels; tests/test_gpu_check.py runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tiny=${GPU_CHECK_TINY:-0}
if [ "${1:-}" = --tiny ]; then
  tiny=1
  shift
fi
out=${1:-${OUT:-gpu_check_out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$work"
python=${PYTHON:-python3}
config=${CONFIG:-experiments/configs/lawm_yt1b.py:noisy-high}
export PYTHONUNBUFFERED=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# Every program is cached, so the profile's re-run of the fastest variant compiles nothing.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$work/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1

if [ "$tiny" = 1 ]; then
  export JAX_PLATFORMS=cpu
  # Less LLVM optimisation: half the compile time of these tiny programs.
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  budget=${GPU_CHECK_BUDGET_S:-900}
  model=(--config.model.encoder.{width=32,depth=2,num_heads=2} --config.model.idm.{width=32,depth=1,num_heads=2}
    --config.model.world_model.{width=32,depth=2,num_heads=2,cond_dim=16} --config.model.latent_dim=8
    --image_size=32 --frames=4 --config.optim.warmup_fraction=0.0)
  timing=(--steps=2 --repeats=1 --warmup=0)
  batches=(2) more_batches=() variant_batch=2 variants=(remat=dots)
  # The recipe's own switches (attention auto: einsum on CPUs) and no warmup, as numerics_check.py runs
  # them: its candidate is then a_recipe_b2's program, loaded from the compilation cache.
  numerics=(--per_device_batch=2 --steps=2 "--candidate=dtype=bfloat16,encoder_dtype=bfloat16")
  encoder=(--preset=tiny --batch=2 --runs=2 --warmup=1)
  min_train=1 min_other=1 cap_train=300 cap_other=300 cap_profile=300 reserve=0
else
  budget=${GPU_CHECK_BUDGET_S:-525}
  model=()
  timing=(--steps=3 --repeats=3 --warmup=1)
  batches=(16 32) more_batches=(64) variant_batch=16
  variants=(remat=dots attention=cudnn remat=none scan=False)
  # The recipe's widths, heads and tokens (16 frames, 256 px) at a sixth of its depth, to fit the time box.
  numerics=(--config.model.encoder.depth=4 --config.model.idm.depth=2 --config.model.world_model.depth=4
    --per_device_batch=2 --steps=3 "--candidate=dtype=bfloat16,encoder_dtype=bfloat16,attention=fused"
    "--candidate=dtype=bfloat16,encoder_dtype=bfloat16,attention=cudnn")
  encoder=(--preset=vitl --dtype=bfloat16 --batch=8 --runs=7 --warmup=2)
  # reserve: kept back for e (a re-run from the compilation cache, then the trace's summary).
  min_train=90 min_other=45 cap_train=200 cap_other=150 cap_profile=80 reserve=110
fi
started=$SECONDS
failures=0
declare -A train_args=()
: >"$work/steps.tsv"

# run_step NAME MIN_S CAP_S JSON COMMAND...: COMMAND under `timeout`, its output in $work/NAME.log.
run_step() {
  local name=$1 min=$2 cap=$3 json=$4 status rc=0 t0=$SECONDS
  shift 4
  local cmdline="$*"
  cmdline=${cmdline//[$'\t\n']/ }
  local left=$((budget - (SECONDS - started) - reserve))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt "$min" ]; then
    echo "=== $name: skipped (${left} s left of the budget, needs ${min} s)"
    printf '%s\tskipped\t\t0\t%s\t%s\t%s\n' "$name" "$limit" "$json" "$cmdline" >>"$work/steps.tsv"
    return 0
  fi
  echo "=== $name (limit ${limit} s): $*"
  timeout -k 10 "$limit" "$@" >"$work/$name.log" 2>&1 || rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status=timeout ;;
    *) status=failed ;;
  esac
  [ "$status" = ok ] || failures=$((failures + 1))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - t0))" "$limit" "$json" "$cmdline" \
    >>"$work/steps.tsv"
  echo "    $status (exit $rc) in $((SECONDS - t0)) s"
  if [ "$status" != ok ]; then
    grep -v '^[IWE][0-9]\{4\} ' "$work/$name.log" | tail -n 15 | sed 's/^/    | /' || true
  fi
  finish
}

train() { # train NAME PER_DEVICE_BATCH [EXTRA ARGS...]
  local name=$1 batch=$2
  shift 2
  train_args[$name]="--per_device_batch=$batch ${model[*]} $*"
  run_step "$name" "$min_train" "$cap_train" "$work/$name.json" "$python" benchmarks/train_step.py \
    --config="$config" --per_device_batch="$batch" "${model[@]}" "${timing[@]}" "$@" --json="$work/$name.json"
}

# The summary (markdown + JSON) from steps.tsv and each step's JSON; $work/best.txt names the fastest run.
render() {
  "$python" - "$work" "$out" "$tiny" "$budget" "$((SECONDS - started))" <<'PY'
import json, math, pathlib, re, sys, time
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
tiny, budget, elapsed = sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])

def load(path):
    try:
        return json.loads(pathlib.Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return None

def last_error(name):
    try:
        lines = (work / f"{name}.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [x for x in lines if x.strip() and not re.match(r"^[IWE]\d{4} ", x)]
    hits = [x for x in lines if re.search(r"Error|error:|Traceback|Killed|No module", x)]
    return (hits or lines or [""])[-1].strip()[:200]

def num(x, fmt):
    return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else ""

rows, best = [], None
for line in (work / "steps.tsv").read_text().splitlines():
    name, status, rc, seconds, limit, json_path, command = (line.split("\t") + [""] * 7)[:7]
    result = load(json_path) if status != "skipped" else None
    row = dict(name=name, status=status, rc=int(rc) if rc else None, seconds=int(seconds or 0),
               limit_s=int(limit or 0), command=command, result=result, note="")
    r = result or {}
    if name.startswith("0_env") and result:
        row["note"] = (f"{r.get('device_kind')} x{len(r.get('devices', []))}; jax {r['versions'].get('jax')}, "
                       f"flax {r['versions'].get('flax')}, torch {r['versions'].get('torch')}"
                       + (f"; MISSING {', '.join(r['missing'])}" if r.get("missing") else ""))
    elif result and "clips_per_s_per_device" in r:
        row["note"] = (f"compile {r['compile_s']:.0f} s, loss {r['loss']:.4f}, compute "
                       + ",".join(f"{k}={v}" for k, v in sorted(r["compute"].items())))
        if status == "ok" and name[:2] in ("a_", "b_") and (best is None or r["clips_per_s_per_device"] > best[1]):
            best = (name, r["clips_per_s_per_device"])
    elif result and "candidates" in r:
        parts = [f"{c.get('overrides')}: " + (f"max |dloss|/loss {c['max_rel_diff']:.2e}" if "max_rel_diff" in c
                 else f"error {c.get('error', '')[:80]}") for c in r["candidates"]]
        row["note"] = f"{'; '.join(parts)} (tolerance {r['rtol']:g}, {r['steps']} steps): " + (
            "pass" if r.get("passed") else "FAIL")
    elif result and "ratio_ours_over_reference" in r:
        row["note"] = (f"ours {r['ours_clips_per_s']:.2f} vs VJEPA2Model {r['reference_clips_per_s']:.2f} clips/s "
                       f"= {r['ratio_ours_over_reference']:.2f}x (goal >= 1.3x), max abs diff {r['max_abs_diff']:.2g}")
    elif result and "kinds_ms_per_step" in r:
        total = r["busy_ms_per_step"] or 1.0
        row["note"] = f"busy {total:.1f} ms/step: " + ", ".join(
            f"{k} {v / total:.0%}" for k, v in r["kinds_ms_per_step"].items())
    if status == "timeout":
        row["note"] = f"timed out at {row['limit_s']} s; " + (row["note"] or f"last output: {last_error(name)}")
    elif status == "failed" and not row["note"]:
        row["note"] = last_error(name)
    rows.append(row)
(work / "best.txt").write_text(best[0] if best else "")

device = next((r["result"].get("device_kind") for r in rows if r["name"].startswith("0_env") and r["result"]), "")
md = [f"# gpu_check {time.strftime('%Y-%m-%d %H:%M')} ({'tiny, CPU' if tiny else 'GPU'}): {device}", "",
      f"{elapsed} s of a {budget} s budget; fastest train-step run: {best[0] if best else 'none'}", "",
      "| step | status | wall s | per-device batch | clips/s per device | step ms | TFLOP/s | MFU | peak GiB | compiled GiB | notes |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
for row in rows:
    r = row["result"] or {}
    clips = r.get("clips_per_s_per_device", r.get("ours_clips_per_s"))
    gib = lambda b: num(b / 2**30, ".2f") if isinstance(b, (int, float)) else ""
    md.append(f"| {row['name']} | {row['status']} | {row['seconds']} | {r.get('per_device_batch', r.get('batch', ''))} "
              f"| {num(clips, '.2f')} | {num(r.get('step_s', math.nan) * 1e3, '.1f')} | {num(r.get('tflops_per_device'), '.1f')} "
              f"| {num(r.get('mfu'), '.1%')} | {gib(r.get('peak_memory_bytes'))} | {gib(r.get('compiled_memory_bytes'))} "
              f"| {row['note'].replace('|', chr(92) + '|')} |")
(out / "summary.md").write_text("\n".join(md) + "\n")
summary = dict(mode="tiny" if tiny else "gpu", device=device, budget_s=budget, elapsed_s=elapsed,
               best=best[0] if best else None, steps=rows)
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
PY
}

finish() {
  render >"$work/render.log" 2>&1 || echo "    (summary failed: $(tail -n 1 "$work/render.log"))"
  tar -czf "$out/logs.tar.gz" -C "$work" --exclude=./jax_cache --exclude=./site --exclude='./trace_*' .
}

# 0. Wheels for what the image lacks (not in tiny mode), then the environment.
if [ "$tiny" != 1 ]; then
  wheels=(.wheels/*.whl)
  if [ -e "${wheels[0]}" ]; then
    run_step 0_wheels 5 120 "" "$python" -m pip install --no-index --no-deps --target "$work/site" "${wheels[@]}"
    export PYTHONPATH="$work/site:$PYTHONPATH"
  else
    echo "=== no .wheels/*.whl: run bash benchmarks/gpu_wheels.sh here and carry .wheels"
  fi
  timeout 30 nvidia-smi >"$work/nvidia-smi.log" 2>&1 || true
fi
cat >"$work/env_check.py" <<'PY'
import importlib, json, sys
found, missing = {}, {}
for name in ["jax", "flax", "optax", "orbax.checkpoint", "ml_collections", "absl", "etils.epath", "msgpack",
             "numpy", "yaml", "torch", "transformers", "safetensors", "lawm.step", "lawm.flops",
             "lawm.hardware", "lawm.weights", "lawm.models.encoder"]:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "")
    except Exception as error:
        missing[name] = f"{type(error).__name__}: {error}"
import jax, torch
info = dict(python=sys.version.split()[0], devices=[str(d) for d in jax.devices()],
            device_kind=jax.devices()[0].device_kind, torch_cuda=torch.cuda.is_available(),
            versions=found, missing=missing)
print(json.dumps(info, indent=2))
json.dump(info, open(sys.argv[1], "w"), indent=2)
sys.exit(1 if missing else 0)
PY
run_step 0_env 5 120 "$work/0_env.json" "$python" "$work/env_check.py" "$work/0_env.json"

# a (first batch), c, d, a (more batches), then b and the largest batch as time allows; e last.
train "a_recipe_b${batches[0]}" "${batches[0]}"
run_step c_numerics "$min_other" "$cap_other" "$work/c_numerics.json" "$python" benchmarks/numerics_check.py \
  --config="$config" "${model[@]}" "${numerics[@]}" --json="$work/c_numerics.json"
run_step d_encoder "$min_other" "$cap_other" "$work/d_encoder.json" "$python" benchmarks/encoder_throughput.py \
  "${encoder[@]}" --json="$work/d_encoder.json"
for batch in "${batches[@]:1}"; do train "a_recipe_b$batch" "$batch"; done
for variant in "${variants[@]}"; do
  args=()
  IFS=, read -ra pairs <<<"$variant"
  for pair in "${pairs[@]}"; do args+=("--config.model.compute.$pair"); done
  train "b_${variant//[=,]/_}_b$variant_batch" "$variant_batch" "${args[@]}"
  if [ "$variant" = "${variants[0]}" ]; then
    for batch in "${more_batches[@]}"; do train "a_recipe_b$batch" "$batch"; done
  fi
done

reserve=0
best=$(cat "$work/best.txt" 2>/dev/null || true)
if [ -n "$best" ]; then
  read -ra best_args <<<"${train_args[$best]}"
  run_step e_profile_run "$min_other" "$cap_profile" "$work/e_profile_run.json" "$python" benchmarks/train_step.py \
    --config="$config" "${best_args[@]}" --steps=2 --repeats=1 --warmup=1 --profile="$work/trace_best" \
    --json="$work/e_profile_run.json"
  run_step e_profile 5 60 "$work/e_profile.json" "$python" benchmarks/profile_summary.py \
    "$work/trace_best" --steps=2 --top=30 --json="$work/e_profile.json"
  cp "$work/e_profile.log" "$out/profile.md" 2>/dev/null || true
  trace=$(find "$work/trace_best" -name '*.json.gz' -size -15M 2>/dev/null | head -n 1 || true)
  if [ -n "$trace" ]; then cp "$trace" "$out/trace.json.gz"; fi
else
  echo "=== e_profile: skipped (no train-step run succeeded)"
  printf 'e_profile\tskipped\t\t0\t0\t\tno train-step run succeeded\n' >>"$work/steps.tsv"
fi
finish
echo
cat "$out/summary.md"
echo "logs: $out/logs.tar.gz (scratch: $work)"
[ "$failures" -eq 0 ]
