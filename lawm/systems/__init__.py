"""Systems: what a training task trains, as pure functions of a params dict.

A system is built from a trainer config (`make(config)`, chosen by `config.task`) and gives the trainer,
the evaluators and the planner everything they need, and nothing about data or devices:

    task          its name (`config.task`)
    trainable     the names of its trained parts (the train state's params)
    batch_keys    the batch entries its loss reads, name -> host dtype (None: as the data gives it)
    evaluator     the lawm.evals evaluator the trainer runs on held-out clips
    init(rng)                         random-init params of every part, pure in rng
    param_counts()                    parameters per part, from shapes only
    frozen_params(rng, mesh=None)     the parts it does not train (an encoder, a loaded world model)
    loss_fn(params, batch, rng, train=True) -> (loss, aux)    aux["metrics"]: scalars to log

  world_model  frozen encoder + IDM + regularizer + world model (the paper's model)
  decoder      frozen encoder + frame-causal decoder (pictures and LPIPS of states)
  controller   a frozen world model run + a controller from real actions to its latent actions

`load(workdir)` rebuilds a finished run's system from its config.json and restores its checkpoint: the
one way evaluators, controllers, the planner and users load a run.
"""

from __future__ import annotations

import jax

from lawm import sharding
from lawm.systems.base import TASKS, Model, Params, System, task_of

__all__ = ["TASKS", "Loader", "Model", "Params", "System", "load", "make", "task_of"]


def make(config) -> System:
    """The system `config.task` names; validates its config (one-line ValueError naming the field)."""
    task = task_of(config)
    if task == "world_model":
        from lawm.systems.world_model import WorldModelSystem

        return WorldModelSystem(config.model)
    if task == "decoder":
        from lawm.systems.decoder import DecoderSystem

        return DecoderSystem(config)
    from lawm.systems.controller import ControllerSystem

    return ControllerSystem(config)


class Loader:
    """A run's system, built once from `config` (default: the run's config.json), and its checkpoints
    restored onto the current devices; evaluating many checkpoints compiles once."""

    def __init__(self, workdir, config=None, mesh=None):
        from lawm import runs  # checkpoints (orbax, grain): only when a run is loaded

        self.run = runs.Run(workdir)
        self.config = self.run.config() if config is None else config
        self.system = make(self.config)
        self.mesh = mesh or sharding.make_mesh(dict(data=-1))
        self.frozen = self.system.frozen_params(jax.random.key(self.config.seed), self.mesh)

    @property
    def workdir(self):
        return self.run.workdir

    def steps(self) -> list[int]:
        return self.run.steps()

    def restore(self, step: int | None = None) -> tuple[int, Model]:
        """(step, model) of a checkpoint (the latest when step is None), frozen parts included."""
        step, params = self.run.restore_params(step, self.mesh)
        return step, Model(self.system, {**self.frozen, **params})

    def close(self) -> None:
        self.run.close()


def load(workdir, step: int | None = None, mesh=None) -> Model:
    """A finished run's model: its system from its config.json, its latest (or `step`) checkpoint."""
    loader = Loader(workdir, mesh=mesh)
    try:
        return loader.restore(step)[1]
    finally:
        loader.close()
