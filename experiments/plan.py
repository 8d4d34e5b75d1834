"""lawm-plan: plan with a trained controller and its world model, and score the plans.

    lawm-plan --config=experiments/configs/plan.py:synthetic --workdir=/tmp/lawm_controller
    lawm-plan --config=experiments/configs/plan.py:droid --workdir=/runs/controller_droid \
        --config.eval_records=/data/droid/clips-eval

WORKDIR is a controller run (lawm-train with experiments/configs/controller.py); its latest checkpoint and
the world model run it names are loaded. Results: WORKDIR/plan/<protocol>.json (mean metrics of the planner
and of the zero- and random-action baselines, plus the plan config) and WORKDIR/plan/<protocol>.png
(planned vs true trajectories). The protocols are in lawm/planning/protocols.py.
"""

from __future__ import annotations

import os

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Plan config file, PATH:PROTOCOL.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The controller run's workdir (lawm-train --workdir).")
flags.mark_flags_as_required(["config", "workdir"])


def plan(config, workdir) -> dict:
    """Runs `config.protocol` on the controller run in `workdir`; writes and returns the results."""
    from lawm import runs, systems
    from lawm.planning import protocols

    protocols.validate(config, runs.read_config(workdir))
    model = systems.load(workdir)
    results = protocols.run(model, config, picture_path=runs.plan_path(workdir, config.protocol, "png"))
    record = {
        "protocol": config.protocol,
        **results,
        "controller_workdir": str(workdir),
        "controller_kind": model.system.kind,
        "world_model_workdir": model.system.workdir,
        "config": config.to_dict(),
    }
    path = runs.write_plan(workdir, config.protocol, record)
    logging.info("Planning (%s): %s", path, runs.dumps(results))
    return record


def main(argv):
    del argv  # cli.run rejects positional arguments
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    plan(_CONFIG.value, _WORKDIR.value)


def run():
    # A protocol the run cannot serve, a workdir that is no controller run: one line naming it.
    cli.run("lawm-plan", main, errors=(ValueError, FileNotFoundError, "lawm.checkpoint.CheckpointError"))


if __name__ == "__main__":
    run()
