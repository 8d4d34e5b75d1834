"""Planning on held-out robot episodes: the seeded sample spread over episodes, and the recon protocol end to
end on a tiny RECON-shaped dataset converted by `lawm-prepare rlds` (a controller trained on its train/)."""

import numpy as np
import pytest

from data_pipelines import records, video
from lawm.planning import eval_clips
from tests.helpers import ListRecords


def record(episode, num, value=0):
    frames = [video.encode_jpeg(np.full((8, 8, 3), 20 * i + value, np.uint8)) for i in range(num)]
    actions = np.tile([[0.5, 0.0, 0.1]], (num - 1, 1)).astype(np.float32)
    meta = {"source_id": f"recon/train/{episode}", "action_kind": "se2"}
    return {"frames": frames, "fps": 4.0, "actions": actions, "meta": meta}


def test_episodes_spread_over_the_videos_with_seeded_starts():
    # Episode 0 has 3 records, 1 has one, 2 has two, 3 only one too short for a 4-frame clip.
    items = [record(0, 6), record(1, 9), record(0, 5), record(2, 4), record(0, 7), record(2, 8), record(3, 3)]
    source = ListRecords(items)
    chosen = eval_clips.sample(source, 6, num_frames=4, fps=4.0, seed=0)
    episodes = [items[i]["meta"]["source_id"] for i, _ in chosen]
    assert sorted(episodes) == sorted(["recon/train/0", "recon/train/1", "recon/train/2"] * 2)  # each twice
    assert all(0 <= start <= len(items[i]["frames"]) - 4 for i, start in chosen)  # the clip fits
    assert chosen == eval_clips.sample(source, 6, num_frames=4, fps=4.0, seed=0)  # seeded
    assert any(eval_clips.sample(source, 6, num_frames=4, fps=4.0, seed=s) != chosen for s in (1, 2))
    assert len({start for _, start in chosen}) > 1  # not all from the first frame
    # At half the record rate a 4-frame clip spans 7 record frames: only the 7- to 9-frame records fit.
    slow = eval_clips.sample(source, 3, num_frames=4, fps=2.0, seed=0)
    assert {items[i]["meta"]["source_id"] for i, _ in slow} == {
        "recon/train/0",
        "recon/train/1",
        "recon/train/2",
    }
    assert all(len(items[i]["frames"]) >= 7 for i, _ in slow)
    with pytest.raises(ValueError, match="no eval record is long enough for 12 frames"):
        eval_clips.sample(source, 2, num_frames=12, fps=4.0, seed=0)


def test_a_clip_from_a_later_start_composes_its_actions():
    made = eval_clips.clip(record(0, 9), 3, num_frames=3, fps=2.0, image_size=8)
    np.testing.assert_allclose(made["video"][:, 0, 0, 0], [60, 100, 140], atol=3)  # frames 3, 5, 7 (JPEG)
    forward = [0.5 + 0.5 * np.cos(0.1), 0.5 * np.sin(0.1), 0.2]  # two steps of (0.5 ahead, 0.1 rad left)
    np.testing.assert_allclose(made["actions"], [forward, forward], atol=1e-6)


def test_recon_protocol_plans_a_controller_on_held_out_converted_episodes(tmp_path):
    """lawm-prepare rlds (episode 1 held out by name) -> a controller trained on train/ -> lawm-plan recon
    on eval/; the zero-action baseline is scored against the held-out trajectory computed by hand."""
    from experiments import plan
    from experiments.configs import plan as plan_configs
    from lawm import train
    from tests import test_rlds
    from tests.helpers import tiny_train_config
    from tests.test_controller_training import controller_config

    builder_dir = test_rlds.prepare(test_rlds.TinyRecon, tmp_path / "tfds", "array_record")
    names = tmp_path / "eval.txt"  # episodes 0 and 1 held out (evaluation shuffles between 2 clips)
    names.write_text("jackal_2019-08-00-16-23-30_0\njackal_2019-08-01-16-23-30_0\n")
    converted = tmp_path / "recon"
    test_rlds.rlds.convert(builder_dir, converted, dataset="recon", eval_episodes=str(names))
    held_out, kept = (records.RecordSource(converted / name) for name in ("eval", "train"))
    assert (len(held_out), len(kept)) == (2, 1)

    world_config = tiny_train_config(total_steps=2)
    train.train_and_evaluate(world_config, tmp_path / "world")
    config = controller_config(tmp_path / "world", world_config, steps=2)
    config.data.update(source="records", num_frames=4, fps=4.0, image_size=32)
    config.data.paths.update(train=str(converted / "train"), eval=str(converted / "eval"))
    config.controller.update(action_dim=3, action_scale=1.0)
    config.eval.update(num_clips=4, batch_size=4)
    train.train_and_evaluate(config, tmp_path / "controller")

    turned = [0.5 + 0.5 * np.cos(0.1), 0.5 * np.sin(0.1)]
    plan_config = plan_configs.get_config("recon")
    assert (plan_config.horizon, plan_config.horizon_s) == (0, 2.0)  # 8 steps at 4 fps
    plan_config.horizon_s = 0.5  # 2 steps: the tiny episodes have 6
    plan_config.update(num_episodes=2, num_pictures=0)
    plan_config.cem.update(num_samples=8, num_elites=2)
    results = plan.plan(plan_config, tmp_path / "controller")
    assert results["episodes"] == 2 and results["horizon"] == 2
    # One episode each (spread over the held-out episodes). Episode 0 drives 0.5 m ahead every step,
    # episode 1 too but turning 0.1 rad left: after the start, poses (0.5, 0), (1, 0) and (0.5, 0),
    # (0.5 + 0.5 cos 0.1, 0.5 sin 0.1) from any start. Zero actions stay at the origin.
    ate = [np.sqrt(np.mean(np.sum(np.square(p), 1))) for p in ([[0.5, 0], [1, 0]], [[0.5, 0], turned])]
    assert results["zero/ate"] == pytest.approx(np.mean(ate), rel=1e-5)
    assert results["zero/rpe"] == pytest.approx(0.5, rel=1e-5)  # the step between them, 0.5 m long
    for metric in ("ate", "rpe", "rpe_se2", "final_error", "final_yaw_error"):
        assert np.isfinite(results[f"planned/{metric}"]), metric
