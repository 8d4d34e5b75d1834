"""lawm-eval: evaluate a run's checkpoints with the evaluators its config names (lawm/evals/).

    lawm-eval --config=experiments/configs/synthetic_eval.py:noisy --workdir=/tmp/lawm_eval/noisy
    lawm-eval ... --step=1500            # a given checkpoint (default: the latest)
    lawm-eval ... --follow               # every checkpoint as it appears, until the run's final one

Results: WORKDIR/eval/<step>.json (metric -> number, plus the config), TensorBoard under WORKDIR/eval,
pictures under WORKDIR/eval/<step>/ when `eval.decoder_workdir` names a decoder run. Any config field
can be overridden with --config.<field>=<value>, e.g. --config.eval.reference_workdir=/tmp/lawm_eval/det.
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CONFIG = config_flags.DEFINE_config_file("config", None, "The run's config file, optionally PATH:ARG.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir (lawm-train --workdir).")
_STEP = flags.DEFINE_integer("step", None, "Evaluate this checkpoint (default: the latest).")
_FOLLOW = flags.DEFINE_bool("follow", False, "Evaluate every new checkpoint until the final one.")
_POLL = flags.DEFINE_float("poll_seconds", 10.0, "With --follow: how often to look for new checkpoints.")
_TIMEOUT = flags.DEFINE_float(
    "timeout_seconds", None, "With --follow: stop after this long without a new checkpoint (default: never)."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv  # cli.run rejects positional arguments
    if _FOLLOW.value and _STEP.value is not None:
        raise app.UsageError("--step and --follow are exclusive")
    from lawm.evals import runner

    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    runner.run(
        _CONFIG.value,
        _WORKDIR.value,
        step=_STEP.value,
        follow=_FOLLOW.value,
        poll_seconds=_POLL.value,
        timeout_seconds=_TIMEOUT.value,
    )


def run():
    # An unknown evaluator, a workdir that is no run, a missing checkpoint: one line naming it.
    cli.run("lawm-eval", main, errors=(ValueError, FileNotFoundError, "lawm.checkpoint.CheckpointError"))


if __name__ == "__main__":
    run()
