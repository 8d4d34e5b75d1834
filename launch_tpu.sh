#!/usr/bin/env bash
# launch_tpu.sh: run lawm-train on every worker of a Cloud TPU VM slice.
#
#   ./launch_tpu.sh --name lawm-v5p --zone us-east5-a --accelerator-type v5p-64 \
#       --config experiments/configs/lawm_yt1b.py:noisy-high --workdir gs://BUCKET/lawm/noisy-high
#
# Flags (--flag VALUE or --flag=VALUE):
#   --name NAME               slice name; an existing slice of that name is reused
#   --zone ZONE               e.g. us-east5-a
#   --accelerator-type TYPE   e.g. v5p-64 (only used when the slice is created)
#   --runtime-version V       TPU VM software version (default v2-alpha-tpuv5)
#   --config PATH[:ARG]       passed to lawm-train --config (path relative to the repository root)
#   --workdir DIR             passed to lawm-train --workdir; gs://... so that every worker sees it
#   --project P               GCP project (default: gcloud's configured one)
#   --extra "FLAGS"           more lawm-train flags, split on whitespace, e.g. "--config.batch_size=512"
#   --delete-at-end           delete the slice once training has ended
#   --dry-run                 print every command (prefixed "+ ") and run none
#   --help
#
# Steps: create or reuse the slice; ship `git archive HEAD` to every worker and pip-install it into
# ~/lawm-venv; start lawm-train on all workers at once (each logs to ~/lawm-train.log); stream worker 0's
# log until training ends; optionally delete the slice. Exits with worker 0's lawm-train exit status.
# Every worker runs the same command: lawm-train's jax.distributed.initialize() discovers the pod.

# Remote commands are single-quoted on purpose: they expand on the workers, not here.
# shellcheck disable=SC2016
set -euo pipefail

usage_line="usage: launch_tpu.sh --name NAME --zone ZONE --accelerator-type TYPE --config PATH[:ARG] \
--workdir DIR [--runtime-version V] [--project P] [--extra FLAGS] [--delete-at-end] [--dry-run] [--help]"
die_usage() { echo "launch_tpu.sh: $1 ($usage_line)" >&2; exit 2; }

name="" zone="" accelerator_type="" runtime_version="v2-alpha-tpuv5" config="" workdir=""
project="" extra="" delete_at_end=false dry_run=false
while (($#)); do
  case $1 in --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; esac  # --flag=value -> --flag value
  case $1 in
    --delete-at-end) delete_at_end=true; shift; continue ;;
    --dry-run) dry_run=true; shift; continue ;;
    --help | -h) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    --name | --zone | --accelerator-type | --runtime-version | --config | --workdir | --project | --extra)
      (($# >= 2)) || die_usage "$1 needs a value" ;;
    *) die_usage "unknown argument: $1" ;;
  esac
  case $1 in
    --name) name=$2 ;; --zone) zone=$2 ;; --accelerator-type) accelerator_type=$2 ;;
    --runtime-version) runtime_version=$2 ;; --config) config=$2 ;; --workdir) workdir=$2 ;;
    --project) project=$2 ;; --extra) extra=$2 ;;
  esac
  shift 2
done
for flag in name zone accelerator_type config workdir; do
  [[ -n ${!flag} ]] || die_usage "missing --${flag//_/-}"
done

# Prints a command the way a shell would read it back: plain words bare, anything else single-quoted.
show() {
  local word out="+"
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $word"; else out+=" '${word//\'/\'\\\'\'}'"; fi
  done
  echo "$out"
}
run() { show "$@"; $dry_run || "$@"; }

tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[[ -z $project ]] || where+=(--project="$project")
cd "$(dirname "${BASH_SOURCE[0]}")"  # git archive, and the config path, are relative to the repo root

# (a) Slice. A describe that fails means there is no such slice (dry-run assumes so).
state=""
show "${tpu[@]}" describe "$name" "${where[@]}" --format='value(state)'
$dry_run || state=$("${tpu[@]}" describe "$name" "${where[@]}" --format='value(state)' 2>/dev/null) || true
if [[ -z $state ]]; then
  run "${tpu[@]}" create "$name" "${where[@]}" --accelerator-type="$accelerator_type" --version="$runtime_version"
elif [[ $state != READY ]]; then
  # A preempted spot slice still describes fine but can never run anything again.
  echo "launch_tpu.sh: slice $name exists but is $state; delete it or use another --name" >&2; exit 1
else
  echo "launch_tpu.sh: reusing slice $name (READY)" >&2
fi

# (b) Code. HEAD, not the working tree, so that a run is reproducible from its commit.
$dry_run || git diff --quiet HEAD -- || echo "launch_tpu.sh: warning: uncommitted changes are not shipped" >&2
tarball="${TMPDIR:-/tmp}/lawm-$name.tar.gz"
run git archive --format=tar.gz -o "$tarball" HEAD
$dry_run || trap 'rm -f "$tarball"' EXIT
run "${tpu[@]}" scp "$tarball" "$name":lawm.tar.gz --worker=all "${where[@]}"
# TPU VM images (Ubuntu 22.04) ship Python 3.10 and lawm needs >= 3.11, hence a venv on python3.11.
setup='set -e; if python3 -c "import sys; sys.exit(sys.version_info < (3, 11))"; then py=python3;'
setup+=' else py=python3.11; fi; sudo apt-get -qq update; sudo apt-get -qq -o DPkg::Lock::Timeout=600'
setup+=' install -y "$py-venv"; "$py" -m venv ~/lawm-venv; . ~/lawm-venv/bin/activate;'
setup+=' rm -rf ~/lawm; mkdir ~/lawm; tar -xzf ~/lawm.tar.gz -C ~/lawm; cd ~/lawm;'
setup+=' pip install -q -U pip "jax[tpu]"; pip install -q -e .'
run "${tpu[@]}" ssh "$name" --worker=all "${where[@]}" --command="$setup"

# (c) Train. User values are %q-quoted for the remote shell; --extra is split into words first.
read -rd '' -a extra_words <<<"$extra" || true  # all lines, not just the first
train="lawm-train $(printf '%q ' --config="$config" --workdir="$workdir" ${extra_words[@]+"${extra_words[@]}"})"
# The subshell ignores SIGHUP (nohup for a whole subshell), so training outlives this ssh session;
# it records lawm-train's exit status for the log stream below.
start="cd ~/lawm && . ~/lawm-venv/bin/activate && rm -f ~/lawm-train.rc && : >~/lawm-train.log && "
start+="( trap \"\" HUP; ${train% }; echo \$? >~/lawm-train.rc ) >>~/lawm-train.log 2>&1 </dev/null & "
start+="echo \$! >~/lawm-train.pid"
run "${tpu[@]}" ssh "$name" --worker=all "${where[@]}" --command="$start"

# tail --pid ends when worker 0's training ends; the ssh then exits with lawm-train's status.
stream='tail -n +1 -f --pid="$(cat ~/lawm-train.pid)" ~/lawm-train.log;'
stream+=' exit "$(cat ~/lawm-train.rc 2>/dev/null || echo 1)"'
status=0
run "${tpu[@]}" ssh "$name" --worker=0 "${where[@]}" --command="$stream" || status=$?
if ((status == 255)); then
  # ssh itself failed (network, or the slice went away): training may still be running, so keep the slice.
  echo "launch_tpu.sh: lost worker 0's log stream; the slice is kept" >&2; exit 255
fi

# (d) Cleanup, whatever training's exit status: an idle slice costs as much as a busy one.
if $delete_at_end; then
  run "${tpu[@]}" delete "$name" "${where[@]}" --quiet
fi
exit "$status"
