"""Evaluating a run's checkpoints: the engine of `lawm-eval` (experiments/eval.py).

A run's workdir holds `config.json` (written by the trainer), `checkpoints/<step>/` and `eval/`. For each
checkpoint evaluated, the evaluators that `config.evaluators` names run on held-out clips and write
  - `eval/<step>.json`: a flat map metric -> number, plus the config used (merged into what the trainer
    wrote there at its final step),
  - TensorBoard scalars under `eval/`,
  - pictures under `eval/<step>/*.png` (with a decoder).
The deterministic reference model and the decoder are other runs, named by their workdirs in
`config.eval.reference_workdir` / `config.eval.decoder_workdir`; they are restored once.
"""

from __future__ import annotations

import json
import time

import jax
import ml_collections
from absl import logging
from etils import epath

from data_pipelines import pipeline, sources
from lawm import checkpoint as checkpoint_lib
from lawm import evals, sharding
from lawm.evals import common

MARK = "evaluated_by_lawm_eval"


def write_config(workdir, config) -> None:
    """The trainer records its config, so evaluation can rebuild any run from its workdir alone."""
    path = epath.Path(workdir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json_best_effort(indent=2))


def read_config(workdir) -> ml_collections.ConfigDict:
    path = epath.Path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir} a lawm-train workdir?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def validate(config) -> None:
    """Fails before any compute on unknown evaluators or options that are not dicts."""
    for name, options in config.get("evaluators", {}).items():
        evals.get(name)
        if not isinstance(options, dict | ml_collections.ConfigDict):
            raise ValueError(f"evaluators.{name} must be a dict of options, got {options!r}")


class Run:
    """A run's checkpoints, restorable into the current devices; the system is built once, so the
    evaluators compile once however many checkpoints are evaluated."""

    def __init__(self, config, workdir, mesh=None):
        from lawm import train

        self.workdir = epath.Path(workdir)
        self.parts = train.build(config, mesh or sharding.make_mesh(dict(data=-1)))
        self.abstract = sharding.abstract_like(
            jax.eval_shape(self.parts.make_state, self.parts.rng), self.parts.shardings
        )
        self.checkpointer = checkpoint_lib.Checkpointer(self.workdir / "checkpoints")

    def steps(self) -> list[int]:
        self.checkpointer.reload()
        return sorted(self.checkpointer.all_steps())

    def restore(self, step: int | None = None) -> tuple[int, common.Model]:
        """(step, model) of a checkpoint (the latest when step is None), frozen parts included."""
        step = self.checkpointer.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.workdir / 'checkpoints'}")
        state = self.checkpointer.restore(step, self.abstract)
        return step, common.Model(self.parts.system, {**self.parts.frozen, **state["params"]})

    def close(self) -> None:
        self.checkpointer.close()


def load_run(workdir) -> common.Model:
    """The latest checkpoint of another run, rebuilt from its own config.json."""
    run = Run(read_config(workdir), workdir)
    try:
        return run.restore()[1]
    finally:
        run.close()


def load_extras(config) -> dict:
    """The deterministic reference, decoder and LPIPS weights the eval config names (Context fields)."""
    options = config.eval
    extras = {"reference": None, "decoder": None, "lpips": None}
    if options.get("reference_workdir"):
        extras["reference"] = load_run(options.reference_workdir)
    if options.get("decoder_workdir"):
        extras["decoder"] = load_run(options.decoder_workdir)
    if options.get("lpips_weights"):
        from lawm.evals import lpips

        extras["lpips"] = lpips.load(options.lpips_weights)
    return extras


def eval_data(config):
    source = sources.make_source(config.data, "eval")
    batches = list(
        pipeline.eval_batches(source, num_examples=config.eval.num_clips, batch_size=config.eval.batch_size)
    )
    return batches, getattr(source, "action_names", None)


def run_evaluators(context: common.Context, batches, evaluators) -> dict:
    results = {}
    for name, options in evaluators.items():
        started = time.perf_counter()
        results.update(evals.get(name)(context, batches, **dict(options)))
        logging.info("Evaluator %s: %.1f s", name, time.perf_counter() - started)
    return results


def write_results(workdir, step: int, results: dict, config, *, by_lawm_eval: bool = True) -> epath.Path:
    """Merges `results` into eval/<step>.json, keeping what is there (the trainer's final evaluation and
    lawm-eval's write to the same file, in either order). Written atomically."""
    path = epath.Path(workdir) / "eval" / f"{step}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.loads(path.read_text()) if path.exists() else {"step": step}
    record.update(results)
    record["config"] = config.to_dict()
    if by_lawm_eval:
        record[MARK] = True
    tmp = path.parent / f".{path.name}.{jax.process_index()}.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return path


def already_evaluated(workdir, step: int) -> bool:
    path = epath.Path(workdir) / "eval" / f"{step}.json"
    return path.exists() and json.loads(path.read_text()).get(MARK, False)


def evaluate_step(target: Run, step: int | None, extras: dict, batches, config, writer=None):
    """Restores one checkpoint, runs the evaluators and writes the results; returns (step, results)."""
    step, model = target.restore(step)
    context = common.Context(model=model, picture_dir=target.workdir / "eval" / str(step), **extras)
    results = run_evaluators(context, batches, config.evaluators)
    if jax.process_index() == 0:
        path = write_results(target.workdir, step, results, config)
        logging.info("Step %d: %s -> %s", step, json.dumps(results), path)
    if writer is not None:
        writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
        writer.flush()
    return step, results


def run(config, workdir, *, step=None, follow=False, poll_seconds=10.0, timeout_seconds=None) -> dict:
    """Evaluates one checkpoint (the latest, or `step`), or with `follow` every checkpoint as it appears
    until the run's final one (step == config.total_steps) is done. Returns {step: results}."""
    from clu import metric_writers  # TensorBoard (imports TensorFlow): only when evaluating

    validate(config)
    workdir = epath.Path(workdir)
    batches, action_names = eval_data(config)
    extras = load_extras(config) | {"action_names": action_names}
    writer = metric_writers.create_default_writer(workdir / "eval", just_logging=jax.process_index() > 0)
    target = Run(config, workdir)
    try:
        if not follow:
            evaluated, results = evaluate_step(target, step, extras, batches, config, writer)
            return {evaluated: results}
        return _follow(target, extras, batches, config, writer, poll_seconds, timeout_seconds)
    finally:
        target.close()
        writer.close()


def _follow(target: Run, extras, batches, config, writer, poll_seconds, timeout_seconds) -> dict:
    done, last_new = {}, time.monotonic()
    while True:
        for candidate in target.steps():
            if candidate in done or already_evaluated(target.workdir, candidate):
                continue
            try:
                evaluated, results = evaluate_step(target, candidate, extras, batches, config, writer)
            except Exception as error:  # deleted by keep-N while we waited: go on with the next
                logging.warning("Skipping checkpoint %d: %s", candidate, " ".join(str(error).split())[:200])
                done[candidate] = None
                continue
            done[evaluated] = results
            last_new = time.monotonic()
        if done.get(config.total_steps) or already_evaluated(target.workdir, config.total_steps):
            return {s: r for s, r in done.items() if r is not None}
        if timeout_seconds is not None and time.monotonic() - last_new > timeout_seconds:
            logging.warning("No new checkpoint for %.0f s; stopping.", timeout_seconds)
            return {s: r for s, r in done.items() if r is not None}
        time.sleep(poll_seconds)
