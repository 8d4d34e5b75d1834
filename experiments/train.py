"""lawm-train: train a latent action world model from a config.

    lawm-train --config=experiments/configs/quickstart.py --workdir=/tmp/lawm_quickstart
    lawm-train --config=experiments/configs/lawm_yt1b.py:noisy-high --workdir=gs://bucket/run \
        --config.batch_size=512
    lawm-train ... --coordinator=host0:1234 --num_processes=2 --process_id=0   # explicit multi-process

Any config field can be overridden with --config.<field>=<value>. A workdir that already holds
checkpoints resumes from the newest one.
"""

from __future__ import annotations

import os

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (TensorBoard writer only): warnings and up

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally PATH:ARG.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and evaluations go.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator",
    None,
    "host:port of process 0, for explicit multi-process "
    "launches (TPU pods and SLURM are detected without it).",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in an explicit launch.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in an explicit launch.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv  # cli.run rejects positional arguments
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    from lawm import distributed, train  # after flag parsing, so --help stays fast

    # Before anything touches a JAX backend: join the other processes when launched as one of several.
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)

    logging.info("Config:\n%s", _CONFIG.value)
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
    # A bad config, workdir or checkpoint, or a diverged run: one line naming it, no traceback.
    cli.run(
        "lawm-train",
        main,
        errors=(
            ValueError,  # lawm.train.ConfigError among them
            FileNotFoundError,
            "lawm.train.NonFiniteError",
            "lawm.checkpoint.CheckpointError",
        ),
    )


if __name__ == "__main__":
    run()
