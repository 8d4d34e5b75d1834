"""lawm-plan: plan with a trained controller and its world model, and score the plans.

    lawm-plan --config=experiments/configs/plan.py:synthetic --workdir=/tmp/lawm_controller
    lawm-plan --config=experiments/configs/plan.py:droid --workdir=/runs/controller_droid \
        --config.eval_records=/data/droid/clips-eval

WORKDIR is a controller run (lawm-train with experiments/configs/controller.py); its latest checkpoint and
the world model run it names are loaded. Results: WORKDIR/plan/<protocol>.json (mean metrics of the planner
and of the zero- and random-action baselines, plus the plan config) and WORKDIR/plan/<protocol>.png
(planned vs true trajectories). The protocols are in lawm/planning_protocols.py.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_CONFIG = config_flags.DEFINE_config_file("config", None, "Plan config file, PATH:PROTOCOL.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The controller run's workdir (lawm-train --workdir).")
flags.mark_flags_as_required(["config", "workdir"])

SOURCES = {"synthetic": "synthetic", "droid": "records", "recon": "records"}


def validate(config, run_config) -> None:
    """Fails before any compute, naming the field, on a plan config that cannot run on this run."""
    from lawm import planning, planning_protocols

    if config.protocol not in planning_protocols.PROTOCOLS:
        raise ValueError(f"protocol must be one of {planning_protocols.PROTOCOLS}, got {config.protocol!r}")
    if run_config.get("task") != "controller":
        raise ValueError(
            f"the workdir holds a {run_config.get('task', 'world_model')!r} run, not a controller"
        )
    source = run_config.data.source
    if source != SOURCES[config.protocol]:
        raise ValueError(
            f"protocol {config.protocol!r} needs a controller trained on {SOURCES[config.protocol]!r}"
        )
    for field in ("num_episodes", "horizon"):
        if not isinstance(config[field], int) or config[field] < 1:
            raise ValueError(f"{field} must be a positive integer, got {config[field]!r}")
    planning.CemConfig(horizon=config.horizon, **dict(config.cem))  # checks the cem fields
    if config.protocol == "synthetic" and config.get("world"):
        from data_pipelines.sources import synthetic

        fields = {**run_config.data.world.to_dict(), **dict(config.world)}
        dim = synthetic.action_dim(synthetic.WorldConfig(**fields))
        if dim != run_config.controller.action_dim:
            raise ValueError(
                f"world: action dim {dim} != the controller's {run_config.controller.action_dim}"
            )
    if config.protocol != "synthetic":
        dim = run_config.controller.action_dim if config.protocol == "droid" else 3
        for field in ("action_low", "action_high"):
            if len(config[field]) != dim:
                raise ValueError(f"{field} needs {dim} values, got {len(config[field])}")


def plan(config, workdir) -> dict:
    """Runs `config.protocol` on the controller run in `workdir`; writes and returns the results."""
    from etils import epath

    from lawm import planning_protocols
    from lawm.evals import runner

    workdir = epath.Path(workdir)
    validate(config, runner.read_config(workdir))
    model = runner.load_run(workdir)
    out = workdir / "plan"
    out.mkdir(parents=True, exist_ok=True)
    results = planning_protocols.run(model, config, picture_path=out / f"{config.protocol}.png")
    record = {
        "protocol": config.protocol,
        **results,
        "controller_workdir": str(workdir),
        "controller_kind": model.system.kind,
        "world_model_workdir": model.system.workdir,
        "config": config.to_dict(),
    }
    path = out / f"{config.protocol}.json"
    tmp = out / f".{path.name}.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.rename(path)
    logging.info("Planning (%s): %s", path, json.dumps(results))
    return record


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    try:
        plan(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FileNotFoundError) as error:
        logging.error("%s", error)
        print(f"lawm-plan: error: {error}", file=sys.stderr)
        sys.exit(1)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
