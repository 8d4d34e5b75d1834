#!/usr/bin/env bash
# Fills .wheels/ (git-ignored) with the wheels benchmarks/gpu_check.sh installs on the GPU machine, whose
# image has no network: what its Python 3.12 lacks of the benchmarks' imports. Run it here, then call the
# device tool with carry [".wheels"].
#
#   bash benchmarks/gpu_wheels.sh [EXTRA_REQUIREMENT ...]
#
# The image (the device notes' package list: jax 0.11.2 + CUDA 13, flax, optax, orbax-checkpoint, chex,
# absl-py, etils, msgpack, numpy, pyyaml, torch, transformers, safetensors) lacks, of what
# benchmarks/train_step.py, numerics_check.py, encoder_throughput.py and profile_summary.py import, only
# ml_collections (pure Python; its dependencies absl-py and PyYAML are there). grain, clu, TensorFlow,
# array-record and av are never imported by them. gpu_check.sh's first step lists any module still missing.
# Versions come from constraints.txt. About 0.1 MiB in all (the device call carries up to 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(ml_collections "$@")
dest=.wheels
python=${PYTHON:-python3}
specs=()
for package in "${packages[@]}"; do
  pinned=$(grep -i "^${package//[-_]/[-_]}==" constraints.txt || true)
  specs+=("${pinned:-$package}")
done
mkdir -p "$dest"
"$python" -m pip download --dest "$dest" --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 "${specs[@]}"
ls -l "$dest"
du -sh "$dest"
