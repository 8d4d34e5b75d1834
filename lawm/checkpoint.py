"""Checkpoints: an orbax CheckpointManager holding the train state and the data iterator's state.

A checkpoint is a step folder with two items: `state` (step, RNG, trainable params, optimiser state and
any trainer counters, as sharded arrays) and `data` (the grain iterator state, a small JSON). Saves are
asynchronous; orbax writes into a temporary folder and renames it when complete, so a half-written
checkpoint is never listed, hence never restored. Restores go into an abstract target built for the
*current* mesh, so a checkpoint moves between meshes and device counts. Frozen encoder weights are not
saved: they come from the config (its seed, or the weights file it names).
"""

from __future__ import annotations

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath


class Checkpointer:
    """Keeps the newest `max_to_keep` checkpoints, plus every step divisible by `keep_period`."""

    def __init__(
        self, directory, *, max_to_keep: int = 3, keep_period: int | None = None, asynchronous: bool = True
    ):
        self.directory = epath.Path(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            keep_period=keep_period,
            create=True,
            enable_async_checkpointing=asynchronous,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, data_iterator=None) -> None:
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, abstract_state, data_iterator=None):
        """The state at `step`, laid out as `abstract_state` (ShapeDtypeStructs with shardings).

        The data iterator, if given, is moved in place to where it was when the checkpoint was saved.
        """
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        return self._manager.restore(step, args=ocp.args.Composite(**items))["state"]

    def wait(self) -> None:
        """Blocks until the asynchronous saves in flight are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def abstract_like(tree, shardings):
    """ShapeDtypeStructs of `tree` carrying `shardings`: the restore target for the current mesh."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
