"""Evaluating a run's checkpoints: the engine of `lawm-eval` (experiments/eval.py).

A run's workdir (lawm.runs) holds `config.json` (written by the trainer), `checkpoints/<step>/` and
`eval/`. For each checkpoint evaluated, the evaluators that `config.evaluators` names run on held-out
clips and write
  - `eval/<step>.json`: a flat map metric -> number, plus the config used (merged into what the trainer
    wrote there at its final step),
  - TensorBoard scalars under `eval/`,
  - pictures under `eval/<step>/*.png` (with a decoder).
The deterministic reference model and the decoder are other runs, named by their workdirs in
`config.eval.reference_workdir` / `config.eval.decoder_workdir`; they are restored once.
"""

from __future__ import annotations

import time

import jax
import ml_collections
from absl import logging

from data_pipelines import pipeline, sources
from lawm import evals, runs, systems
from lawm.evals import common


def validate(config) -> None:
    """Fails before any compute on unknown evaluators or options that are not dicts."""
    for name, options in config.get("evaluators", {}).items():
        evals.get(name)
        if not isinstance(options, dict | ml_collections.ConfigDict):
            raise ValueError(f"evaluators.{name} must be a dict of options, got {options!r}")


def load_extras(config) -> dict:
    """The deterministic reference, decoder and LPIPS weights the eval config names (Context fields)."""
    options = config.eval
    extras = {"reference": None, "decoder": None, "lpips": None}
    if options.get("reference_workdir"):
        extras["reference"] = systems.load(options.reference_workdir)
    if options.get("decoder_workdir"):
        extras["decoder"] = systems.load(options.decoder_workdir)
    if options.get("lpips_weights"):
        from lawm.models import lpips

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


def evaluate_step(target: systems.Loader, step: int | None, extras: dict, batches, config, writer=None):
    """Restores one checkpoint, runs the evaluators and writes the results; returns (step, results)."""
    step, model = target.restore(step)
    context = common.Context(model=model, picture_dir=target.workdir / "eval" / str(step), **extras)
    results = run_evaluators(context, batches, config.evaluators)
    if jax.process_index() == 0:
        path = runs.write_eval(target.workdir, step, results, config)
        logging.info("Step %d: %s -> %s", step, runs.dumps(results), path)
    if writer is not None:
        writer.write_scalars(step, {f"eval/{k}": v for k, v in results.items()})
        writer.flush()
    return step, results


def run(config, workdir, *, step=None, follow=False, poll_seconds=10.0, timeout_seconds=None) -> dict:
    """Evaluates one checkpoint (the latest, or `step`), or with `follow` every checkpoint as it appears
    until the run's final one (step == config.total_steps) is done. Returns {step: results}."""
    from clu import metric_writers  # TensorBoard (imports TensorFlow): only when evaluating

    validate(config)
    workdir = runs.usable_workdir(workdir)
    batches, action_names = eval_data(config)
    extras = load_extras(config) | {"action_names": action_names}
    target = systems.Loader(workdir, config)
    writer = metric_writers.create_default_writer(workdir / "eval", just_logging=jax.process_index() > 0)
    try:
        if not follow:
            evaluated, results = evaluate_step(target, step, extras, batches, config, writer)
            return {evaluated: results}
        return _follow(target, extras, batches, config, writer, poll_seconds, timeout_seconds)
    finally:
        target.close()
        writer.close()


def _follow(target: systems.Loader, extras, batches, config, writer, poll_seconds, timeout_seconds) -> dict:
    done, last_new = {}, time.monotonic()
    while True:
        for candidate in target.steps():
            if candidate in done or runs.already_evaluated(target.workdir, candidate):
                continue
            try:
                evaluated, results = evaluate_step(target, candidate, extras, batches, config, writer)
            except Exception as error:  # deleted by keep-N while we waited: go on with the next
                logging.warning("Skipping checkpoint %d: %s", candidate, " ".join(str(error).split())[:200])
                done[candidate] = None
                continue
            done[evaluated] = results
            last_new = time.monotonic()
        if done.get(config.total_steps) or runs.already_evaluated(target.workdir, config.total_steps):
            return {s: r for s, r in done.items() if r is not None}
        if timeout_seconds is not None and time.monotonic() - last_new > timeout_seconds:
            logging.warning("No new checkpoint for %.0f s; stopping.", timeout_seconds)
            return {s: r for s, r in done.items() if r is not None}
        time.sleep(poll_seconds)
