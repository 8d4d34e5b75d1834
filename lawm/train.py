"""The trainer: `train_and_evaluate(config, workdir)`, readable top to bottom.

One program for a laptop CPU and a TPU pod: the mesh, the batch and the model sizes are config. The loop
never waits on the device except at log, checkpoint and evaluation boundaries.

What it trains is a *system* (lawm.systems, chosen by `config.task`): the latent action world model
(the default), the frame-causal decoder or a controller. The system says which parts it trains, which
batch entries its loss reads and which evaluator (lawm.evals) scores it on held-out clips.

Train state (a dict, checkpointed whole): step, rng, params (the trainable parts), opt_state,
first_nonfinite_step (-1 while all is well; set inside the step, which then skips the update) and, for
codebook regularizers, code_counts since the last dead-code reset. The frozen encoder's params live
outside it: they are rebuilt from the config.
"""

from __future__ import annotations

import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from data_pipelines import pipeline, sources
from lawm import checkpoint as checkpoint_lib
from lawm import config as config_lib
from lawm import evals, hardware, optim, runs, sharding, systems
from lawm.step import build, make_train_step


class NonFiniteError(FloatingPointError):
    """The loss or the gradient norm stopped being finite; the run stops without saving."""


class ConfigError(ValueError):
    """A config that cannot run; raised before any compute, with one line naming the field."""


# ------------------------------------------------------------------------------------------------
# Validation: every field that can be checked is checked before any compute.
# ------------------------------------------------------------------------------------------------
def validate_config(config, num_devices: int) -> None:
    """Raises ConfigError naming the first field that cannot run on `num_devices` devices."""
    try:
        _validate(config, num_devices)
    except (ValueError, KeyError, AttributeError) as error:
        raise ConfigError(str(error).strip("'\"")) from None


def _validate(config, num_devices: int) -> None:
    systems.make(config)  # validates the model (and task) config
    optim.validate_optim_config(config.optim)
    if config.optim.total_steps != config.total_steps:
        raise ValueError(
            f"optim.total_steps ({config.optim.total_steps}) != total_steps ({config.total_steps})"
        )
    shape = dict(zip(sharding.AXES, sharding.mesh_shape(config.mesh, num_devices), strict=True))
    data_parallel = shape["data"] * shape["fsdp"]
    if config.batch_size <= 0 or config.batch_size % data_parallel:
        raise ValueError(
            f"batch_size {config.batch_size} is not divisible by the data-parallel size "
            f"{data_parallel} (mesh data x fsdp)"
        )
    pipeline.per_process_batch(config.batch_size)
    sources.check_paths(config.data)
    encoder = config_lib.resolve(config.model).encoder
    frames = sources.num_frames(config.data)
    if encoder.causal != "per_frame" and frames % encoder.tubelet_size:
        raise ValueError(
            f"data has {frames} frames per clip, not divisible by model.encoder.tubelet_size "
            f"({encoder.tubelet_size})"
        )
    if sources.image_hw(config.data) != config_lib.image_hw(encoder):
        raise ValueError(
            f"data frames are {sources.image_hw(config.data)} but model.encoder.image_size is "
            f"{encoder.image_size}"
        )
    for field in ("log_every", "checkpoint_every"):
        if config[field] <= 0:
            raise ValueError(f"{field} must be positive, got {config[field]}")


# ------------------------------------------------------------------------------------------------
# Host-side helpers
# ------------------------------------------------------------------------------------------------
class _Preemption:
    """SIGTERM (TPU maintenance, spot reclamation) asks for a checkpoint at the next step boundary.

    With several processes, JAX's preemption sync point makes them all agree on that step (any process
    may be the one signalled); alone, a plain signal handler sets a flag.
    """

    def __init__(self):
        self._signalled = False
        self._multi = jax.process_count() > 1
        # jax.distributed's own notifier catches SIGTERM; a Python handler would take the signal from it.
        # Handlers can only be installed from the main thread; elsewhere the caller owns signals.
        main_thread = threading.current_thread() is threading.main_thread()
        self._previous = (
            signal.signal(signal.SIGTERM, self._handle) if main_thread and not self._multi else None
        )

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: checkpointing at the next step boundary, then exiting.")
        self._signalled = True

    def requested(self, step: int) -> bool:
        if self._multi:
            return multihost_utils.reached_preemption_sync_point(step)
        return self._signalled

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def check_finite(state, last_checkpoint: int | None) -> None:
    bad = int(jax.device_get(state["first_nonfinite_step"]))
    if bad >= 0:
        kept = (
            f"the last checkpoint (step {last_checkpoint}) is intact"
            if last_checkpoint is not None
            else "no checkpoint was written"
        )
        raise NonFiniteError(f"loss or gradient became non-finite at step {bad}; stopping: {kept}")


def to_device(batch, mesh, keys):
    """This process's share of the batch -> global arrays sharded over data x fsdp: only the entries the
    system reads (`keys`: name -> host dtype, None to keep the data's)."""
    batch_sharding = sharding.batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(batch_sharding, np.asarray(v, keys[k]))
        for k, v in batch.items()
        if k in keys
    }


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def train_and_evaluate(config, workdir, *, num_steps: int | None = None) -> dict:
    """Trains `config` in `workdir` (resuming if it holds checkpoints); returns the final evaluation.

    `num_steps` caps the steps of this call (then it checkpoints and returns without the final
    evaluation), for job slots shorter than the run: the next call resumes where it stopped.
    """
    workdir = runs.usable_workdir(workdir)
    validate_config(config, jax.device_count())
    preemption = _Preemption()  # from now on, SIGTERM means "checkpoint at the next step and exit 0"
    try:
        return _train(config, workdir, num_steps, preemption)
    finally:
        preemption.restore()


def _train(config, workdir, num_steps, preemption) -> dict:
    from clu import metric_writers  # imports TensorFlow for TensorBoard: keep it out of library imports

    mesh = sharding.make_mesh(config.mesh)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    if jax.process_index() == 0:
        runs.write_config(workdir, config)  # evaluation rebuilds the run from it

    # ---- Data --------------------------------------------------------------------------------
    train_source = sources.make_source(config.data, "train")
    bad_records = getattr(train_source, "counter", None)  # sources that skip and count bad records
    train_iter = iter(
        pipeline.train_dataset(
            train_source,
            global_batch=config.batch_size,
            seed=config.data.shuffle_seed,
            num_threads=config.data.num_threads,
            prefetch=config.data.prefetch,
        )
    )
    eval_source = sources.make_source(config.data, "eval")
    eval_data = pipeline.eval_batches(
        eval_source, num_examples=config.eval.num_clips, batch_size=config.eval.batch_size
    )
    action_names = getattr(eval_source, "action_names", None)

    # ---- Model, optimiser and state, created already sharded ---------------------------------
    parts = build(config, mesh)
    system, rng = parts.system, parts.rng
    logging.info("Parameters per part: %s", system.param_counts())
    labels = optim.param_labels(parts.trainable, config.optim.get("use_muon", True))
    logging.info("Optimiser split:\n%s", optim.describe(labels, parts.trainable))

    checkpointer = checkpoint_lib.Checkpointer(
        workdir / "checkpoints",
        max_to_keep=config.keep_checkpoints,
        keep_period=config.get("keep_every") or None,
    )
    abstract = sharding.abstract_like(jax.eval_shape(parts.make_state, rng), parts.shardings)
    last_checkpoint, state = checkpointer.restore_latest(abstract, train_iter)
    if last_checkpoint is None:
        state = jax.jit(parts.make_state, out_shardings=parts.shardings)(rng)
    else:
        logging.info("Resumed from %s at step %d", checkpointer.directory, last_checkpoint)
    start_step = int(jax.device_get(state["step"]))
    end_step = config.total_steps if num_steps is None else min(config.total_steps, start_step + num_steps)

    # ---- Compile once, ahead of the loop -------------------------------------------------------
    step_fn = jax.jit(make_train_step(system, parts.optimizer, parts.reset_every), donate_argnums=0)
    frozen = parts.frozen
    batch = to_device(next(train_iter), mesh, system.batch_keys) if start_step < end_step else None
    flops_per_device = None  # per step: the analytic model FLOPs (lawm.flops), else XLA's count
    if batch is not None:
        started = time.perf_counter()
        compiled = step_fn.lower(state, frozen, batch).compile()
        flops_per_device = model_flops_per_device(config) or hardware.compiled_flops(compiled)
        logging.info(
            "Compiled the train step in %.1f s (%s FLOP/step per device)",
            time.perf_counter() - started,
            f"{flops_per_device:.3g}" if flops_per_device else "unknown",
        )
        step_fn = compiled

    # ---- The loop ------------------------------------------------------------------------------
    # Dispatch is asynchronous: while the device runs step i, the host fetches batch i+1 (grain's threads
    # decode ahead) and starts its transfer, so input work hides behind compute. A deeper device queue
    # would gain nothing more and would checkpoint the input iterator ahead of the batches trained on.
    # The state is donated; metrics stay on device until the next log step.
    history, pending, timer = [], [], (time.perf_counter(), start_step)
    try:
        for step in range(start_step, end_step):
            if batch is None:
                batch = to_device(next(train_iter), mesh, system.batch_keys)
            state, metrics = step_fn(state, frozen, batch)
            batch = None
            pending.append(metrics)
            done = step + 1

            if done % config.log_every == 0 or done == end_step:
                check_finite(state, last_checkpoint)
                means = {
                    k: float(v)
                    for k, v in jax.device_get(
                        jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *pending)
                    ).items()
                }
                pending = []
                means.update(throughput(timer, done, config, flops_per_device))
                if bad_records is not None:
                    means.update(bad_records.metrics())
                timer = (time.perf_counter(), done)
                writer.write_scalars(done, means)
                history.append({"step": done, **means})

            preempted = preemption.requested(done)
            if done % config.checkpoint_every == 0 or done == end_step or preempted:
                check_finite(state, last_checkpoint)
                checkpointer.save(done, state, train_iter)
                last_checkpoint = done
            if preempted:
                logging.warning("Checkpointed step %d after SIGTERM; exiting.", done)
                checkpointer.wait()
                return {"preempted_at": done, "history": history}

            if config.eval_every and done % config.eval_every == 0 and done < config.total_steps:
                results = evaluate(system, frozen, state, eval_data, action_names)
                writer.write_scalars(done, {f"eval/{k}": v for k, v in results.items()})
    finally:
        checkpointer.wait()
        writer.flush()

    # ---- Final evaluation ----------------------------------------------------------------------
    final_step = int(jax.device_get(state["step"]))
    if final_step < config.total_steps:
        return {"stopped_at": final_step, "history": history}
    results = evaluate(system, frozen, state, eval_data, action_names)
    writer.write_scalars(final_step, {f"eval/{k}": v for k, v in results.items()})
    writer.flush()
    if jax.process_index() == 0:
        path = runs.write_eval(workdir, final_step, results, config, by_lawm_eval=False)
        logging.info("Final evaluation (%s): %s", path, runs.dumps(results))
    checkpointer.close()
    return {"eval": results, "history": history}


def evaluate(system, frozen, state, eval_data, action_names=None) -> dict:
    """The system's evaluator (lawm.evals) on the held-out clips, with the current params."""
    model = systems.Model(system, {**frozen, **state["params"]})
    return evals.get(system.evaluator)(evals.Context(model=model, action_names=action_names), eval_data)


def model_flops_per_device(config) -> float | None:
    """The latent action world model's analytic model FLOPs per step and device (None for other tasks)."""
    if systems.task_of(config) != "world_model":
        return None
    from lawm import flops

    count = flops.train_step_flops(
        config.model, config.batch_size, sources.num_frames(config.data), use_muon=False
    )
    return count.model / jax.device_count()


def throughput(timer, done: int, config, flops_per_device) -> dict:
    """steps/s, clips/s, ETA and (where the device's peak is known) MFU since the last report."""
    since, since_step = timer
    seconds = time.perf_counter() - since
    steps_per_s = (done - since_step) / max(seconds, 1e-9)
    out = {
        "perf/steps_per_s": steps_per_s,
        "perf/clips_per_s": steps_per_s * config.batch_size,
        "perf/eta_minutes": (config.total_steps - done) / max(steps_per_s, 1e-9) / 60,
    }
    if flops_per_device:
        achieved = flops_per_device * steps_per_s
        out["perf/tflops_per_s_per_device"] = achieved / 1e12
        peak = hardware.peak_flops(jax.devices()[0])
        if peak:
            out["perf/mfu"] = achieved / peak
    return out
