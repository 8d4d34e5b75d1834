"""The trainer's retention and evaluation options, on one tiny run: which checkpoints stay on disk
(keep_checkpoints, keep_every) and at which steps evaluation runs and writes its `eval/...` scalars
(eval_every, then the final evaluation)."""

import pytest
from clu import metric_writers

from lawm import train
from tests.helpers import tiny_train_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """8 steps, a checkpoint every step, the newest 2 kept plus every 4th; evaluation every 3 steps."""
    config = tiny_train_config(total_steps=8)
    config.checkpoint_every = 1
    config.keep_checkpoints = 2
    config.keep_every = 4
    config.eval_every = 3
    workdir = tmp_path_factory.mktemp("run")
    evaluated_at, eval_scalars_at = [], []
    create_writer = metric_writers.create_default_writer
    evaluate = train.evaluate

    def recording_evaluate(system, frozen, state, *args):
        evaluated_at.append(int(state["step"]))
        return evaluate(system, frozen, state, *args)

    def recording_writer(*args, **kwargs):
        writer = create_writer(*args, **kwargs)
        write_scalars = writer.write_scalars

        def write(step, scalars):
            if any(name.startswith("eval/") for name in scalars):
                eval_scalars_at.append(int(step))
            write_scalars(step, scalars)

        writer.write_scalars = write
        return writer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "evaluate", recording_evaluate)
        patch.setattr(metric_writers, "create_default_writer", recording_writer)
        result = train.train_and_evaluate(config, workdir)
    return workdir, result, evaluated_at, eval_scalars_at


def test_the_newest_checkpoints_and_every_keep_every_th_remain(run):
    workdir, result, _, _ = run
    assert "eval" in result  # the run finished
    # Saved at 1..8; the newest 2 (7, 8) stay, and so does every step divisible by 4 (4, 8).
    steps = sorted(int(path.name) for path in (workdir / "checkpoints").iterdir() if path.name.isdigit())
    assert steps == [4, 7, 8]


def test_eval_every_evaluates_mid_run_and_the_final_step_once(run):
    _, result, evaluated_at, eval_scalars_at = run
    # Every 3 steps before the end (3, 6), then the final evaluation at 8 (not repeated at a multiple).
    assert evaluated_at == [3, 6, 8]
    assert eval_scalars_at == [3, 6, 8]
    assert result["eval"]  # the final evaluation's scalars are returned too
