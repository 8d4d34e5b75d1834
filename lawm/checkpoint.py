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
from absl import logging
from etils import epath
from jax.experimental import multihost_utils


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be restored."""


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
        # Handlers named up front, so a checkpoint's metadata is readable before anything is restored.
        handlers = {"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler()}
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def reload(self) -> None:
        """Re-reads the directory: steps another process saved since (an evaluator following a run)."""
        self._manager.reload()

    def state_shapes(self, step: int):
        """ShapeDtypeStructs of the train state saved at `step`, from the checkpoint's metadata alone."""
        metadata = self._manager.item_metadata(step)["state"]
        tree = getattr(metadata, "tree", metadata)
        return _list_indices(jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), tree))

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

    def restore_latest(self, abstract_state, data_iterator=None):
        """(step, state) from the newest checkpoint that restores, or (None, None) when there is none.

        An unreadable checkpoint (a truncated or damaged file) is reported with a warning naming it and
        the previous one is tried. Once a good one is found, the bad newer ones are renamed
        `<step>.corrupt` (kept for inspection, out of the way of new saves). If none restores, nothing
        is renamed and CheckpointError says so, rather than training from scratch over them.
        """
        steps = sorted(self.all_steps(), reverse=True)
        bad = []
        for step in steps:
            try:
                state = self.restore(step, abstract_state, data_iterator)
            except Exception as error:  # orbax / tensorstore raise many types for a damaged file
                message = " ".join(str(error).split())[:300]
                logging.warning(
                    "Checkpoint %s is unreadable (%s); trying the previous one.",
                    self.directory / str(step),
                    message,
                )
                bad.append(step)
                continue
            self._set_aside(bad)
            return step, state
        if steps:
            raise CheckpointError(
                f"no readable checkpoint in {self.directory} (tried steps "
                f"{', '.join(map(str, steps))}); nothing was changed"
            )
        return None, None

    def _set_aside(self, steps) -> None:
        if not steps:
            return
        if jax.process_index() == 0:
            for step in steps:
                (self.directory / str(step)).rename(self.directory / f"{step}.corrupt")
                logging.warning("Moved the unreadable checkpoint to %s", self.directory / f"{step}.corrupt")
        multihost_utils.sync_global_devices("lawm_checkpoint_set_aside")
        self._manager.reload()

    def wait(self) -> None:
        """Blocks until the asynchronous saves in flight are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _list_indices(tree):
    """Metadata names every key as a string; the params of a list of blocks (nnx.List) are keyed 0, 1, ...
    in the trees the trainer saved. Give them back their integer keys, so a restored tree has the same
    structure as `system.init`'s."""
    if isinstance(tree, dict):
        return {
            int(k) if isinstance(k, str) and k.isdigit() else k: _list_indices(v) for k, v in tree.items()
        }
    return tree
