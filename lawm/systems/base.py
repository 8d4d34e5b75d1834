"""What every system is and has: the protocol, the task names, a model (a system with its params)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

Params = dict[str, Any]
TASKS = ("world_model", "decoder", "controller")
DEFAULT_TASK = "world_model"


class System(Protocol):
    """What the trainer, the evaluators and the planner rely on (lawm.systems' docstring says each)."""

    task: str
    trainable: tuple[str, ...]
    batch_keys: Mapping[str, Any]
    evaluator: str

    def init(self, rng) -> Params: ...

    def param_counts(self) -> dict[str, int]: ...

    def frozen_params(self, rng, mesh=None) -> Params: ...

    def loss_fn(self, params: Params, batch, rng, train: bool = True): ...


@dataclasses.dataclass
class Model:
    """A system with its params (frozen parts included): what evaluators and the planner take."""

    system: Any
    params: dict


def task_of(config) -> str:
    """The task a trainer config trains (configs without the field train the world model)."""
    task = config.get("task", DEFAULT_TASK)
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task
