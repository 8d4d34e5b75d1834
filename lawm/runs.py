"""A run's workdir: the one place that knows its layout, and the one way to read and write it.

    WORKDIR/config.json          the trainer config, written by lawm-train (rebuilds the run's system)
    WORKDIR/checkpoints/<step>/  orbax checkpoints (lawm.checkpoint): train state + data iterator state
    WORKDIR/eval/<step>.json     evaluation results (the trainer's final evaluation and lawm-eval's, merged)
    WORKDIR/eval/<step>/         evaluation pictures
    WORKDIR/plan/<protocol>.json planning results (lawm-plan), and <protocol>.png

Every file is written atomically (lawm.files), so re-running a command replaces its results in one step
and a crash never leaves half a file. A checkpoint's params are restored from the checkpoint's own
metadata (shapes and dtypes), so loading a run needs neither its optimiser nor the code that trained it;
`lawm.systems.load` adds the run's system on top.
"""

from __future__ import annotations

import json

import ml_collections
from etils import epath

from lawm import checkpoint as checkpoint_lib
from lawm import files, sharding

CONFIG_FILE = "config.json"
LAWM_EVAL_MARK = "evaluated_by_lawm_eval"


def usable_workdir(workdir) -> epath.Path:
    """`workdir` as a path, or a one-line ValueError when it cannot be one (e.g. it is a file)."""
    path = epath.Path(workdir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"workdir {path} is a file, not a folder")
    return path


def write_config(workdir, config) -> None:
    """The trainer records its config, so evaluation can rebuild any run from its workdir alone."""
    files.write_atomic(usable_workdir(workdir) / CONFIG_FILE, config.to_json_best_effort(indent=2))


def read_config(workdir) -> ml_collections.ConfigDict:
    path = usable_workdir(workdir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir} a lawm-train workdir?")
    return ml_collections.ConfigDict(files.read_json(path))


# -- results ----------------------------------------------------------------------------------------------


def eval_path(workdir, step: int) -> epath.Path:
    return epath.Path(workdir) / "eval" / f"{step}.json"


def write_eval(workdir, step: int, results: dict, config, *, by_lawm_eval: bool = True) -> epath.Path:
    """Merges `results` into eval/<step>.json, keeping what is there (the trainer's final evaluation and
    lawm-eval's write to the same file, in either order)."""
    path = eval_path(workdir, step)
    record = files.read_json(path) if path.exists() else {"step": step}
    record.update(results)
    record["config"] = config.to_dict()
    if by_lawm_eval:
        record[LAWM_EVAL_MARK] = True
    return files.write_json(path, record)


def already_evaluated(workdir, step: int) -> bool:
    path = eval_path(workdir, step)
    return path.exists() and files.read_json(path).get(LAWM_EVAL_MARK, False)


def plan_path(workdir, protocol: str, suffix: str = "json") -> epath.Path:
    return epath.Path(workdir) / "plan" / f"{protocol}.{suffix}"


def write_plan(workdir, protocol: str, record: dict) -> epath.Path:
    """plan/<protocol>.json, replacing an earlier result."""
    return files.write_json(plan_path(workdir, protocol), record)


# -- checkpoints ------------------------------------------------------------------------------------------


class Run:
    """A run's checkpoints, listed and restored onto the current devices."""

    def __init__(self, workdir):
        self.workdir = usable_workdir(workdir)
        self._checkpointer = None

    def config(self) -> ml_collections.ConfigDict:
        return read_config(self.workdir)

    @property
    def checkpointer(self) -> checkpoint_lib.Checkpointer:
        if self._checkpointer is None:
            directory = self.workdir / "checkpoints"
            if not directory.is_dir():
                raise FileNotFoundError(f"no checkpoint in {directory}")
            self._checkpointer = checkpoint_lib.Checkpointer(directory)
        return self._checkpointer

    def steps(self) -> list[int]:
        """The steps checkpointed so far (none yet while a run starts: an evaluator may be following it)."""
        if not (self.workdir / "checkpoints").is_dir():
            return []
        self.checkpointer.reload()
        return sorted(self.checkpointer.all_steps())

    def restore_params(self, step: int | None = None, mesh=None) -> tuple[int, dict]:
        """(step, trainable params) of a checkpoint (the latest when step is None), FSDP-sharded on `mesh`
        (default: all devices, data-parallel)."""
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.workdir / 'checkpoints'}")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise FileNotFoundError(
                f"no checkpoint of step {step} in {self.workdir / 'checkpoints'} (it has {steps})"
            )
        mesh = mesh or sharding.make_mesh(dict(data=-1))
        shapes = self.checkpointer.state_shapes(step)
        abstract = sharding.abstract_like(shapes, sharding.state_shardings(shapes, mesh))
        return step, self.checkpointer.restore(step, abstract)["params"]

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()


def dumps(results: dict) -> str:
    """One line of results for the log."""
    return json.dumps(results, default=str)
