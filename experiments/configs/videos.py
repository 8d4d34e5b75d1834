"""Train on your own videos: a folder, a glob or a list file of videos, or the clip records cut from them.

COMMAND:  lawm-train --config=experiments/configs/videos.py --workdir=/tmp/lawm_videos \
              --config.data.videos.train=DIR --config.data.videos.eval=DIR2
          DIR, DIR2: a folder, a glob ("clips/*.mp4") or a list file of videos (local or gs://); any
          container or codec FFmpeg reads. Clips are decoded straight from the files: a random 4 s window
          of each video (16 per video per pass) in training, the centred one in evaluation, never across a
          scene cut (`--config.data.scene_cuts=split|drop|keep`). Cutting clip records once is cheaper
          to train on than seeking into long files:
            lawm-prepare videos --input DIR --output CLIPS --size 64   (and DIR2 -> CLIPS_EVAL)
            lawm-train --config=experiments/configs/videos.py --workdir=/tmp/lawm_videos \
                --config.data.source=records --config.data.paths.train=CLIPS \
                --config.data.paths.eval=CLIPS_EVAL
          ARG `paper`: the paper's model and clips (lawm_yt1b.py:noisy-high: ViT-L, 256 px, 16 frames at
          4 fps, batch 1024) on the same videos, for an accelerator; any lawm_yt1b preset works
          (videos.py:sparse-mid, ...).
RUNTIME:  small (the default): 1000 steps of batch 8; from records, about 3 minutes on 2 CPU cores with
          --config.data.num_frames=8 (README "Train on your own videos"); from video files, decoding
          dominates (a 4 s window of 720p H.264: ~1 s per clip per core, benchmarks/RESULTS.md).
EXPECTED: WORKDIR/eval/1000.json: own_over_shuffled below 1 on held-out videos needs hours of footage; on
          the 15 s of the tests' real videos the model memorises its clips (README "Train on your own
          videos"). With a known camera motion to learn: experiments/configs/camera_pan.py.
"""

from __future__ import annotations

from experiments.configs import common, lawm_yt1b


def get_config(arg="small"):
    arg = arg or "small"
    if arg == "paper":
        arg = "noisy-high"
    if arg != "small":
        config = lawm_yt1b.get_config(arg)  # the recipe's model, clips and schedule
    else:
        config = common.cpu_model(common.base_config(total_steps=1000))
        config.model.world_model.residual = True  # predicts the change of state (as synthetic_eval.py)
        config.model.idm.update(depth=2, pairing="channels")  # why: camera_pan.py
        config.model.regularizer = dict(name="noisy", beta=1e-4)
        config.data.update(num_frames=16, fps=4.0, image_size=64, windows_per_video=16)
        config.batch_size = 8
        config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
        config.log_every = 50
        config.checkpoint_every = 500
        config.eval.update(num_clips=128, batch_size=16)
    config.data.source = "video_folder"
    return config
