"""lawm-transfer: one video's latent actions driving another, and back, written as a video.

    lawm-transfer --model=WORKDIR_OR_EXPORT --decoder=DECODER_RUN --source=a.mp4 --target=b.mp4 \
        --output=out.mp4

Writes out.mp4 and out.gif (panels: true A | true B | B driven by A's latents | A driven by the cycled
latents) and out.json (the cycle error ratio and the state-space errors per step), and prints the ratio;
lawm/transfer_video.py says how. Without --decoder (or an export holding one) states cannot become pictures:
only out.json is written, and stderr says so.
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_MODEL = flags.DEFINE_string("model", None, "A world model: its lawm-train workdir or a lawm-export folder.")
_STEP = flags.DEFINE_integer("step", None, "With a workdir: this checkpoint (default: the latest).")
_DECODER = flags.DEFINE_string("decoder", None, "A decoder run's workdir (or an export holding one).")
_SOURCE = flags.DEFINE_string("source", None, "The video whose latent actions are transferred (A).")
_TARGET = flags.DEFINE_string("target", None, "The video they are applied to (B).")
_OUTPUT = flags.DEFINE_string("output", None, "The video to write (.mp4, .mkv or .mov).")
_SOURCE_START = flags.DEFINE_float("source_start", 0.0, "Where A's clip starts, in seconds.")
_TARGET_START = flags.DEFINE_float("target_start", 0.0, "Where B's clip starts, in seconds.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", None, "Frames per clip (default: the training clip's).")
_HORIZON = flags.DEFINE_integer("horizon", None, "Predicted states (default: min(4, states - 1)).")
_CONTEXT = flags.DEFINE_integer("context_steps", None, "Context states (default: the clip's other states).")
_PANEL = flags.DEFINE_integer("panel_size", 128, "Panels are enlarged (nearest) to at least this width.")
flags.mark_flags_as_required(["model", "source", "target", "output"])


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    import lawm
    from lawm import transfer_video

    model = lawm.load(_MODEL.value, step=_STEP.value, decoder=_DECODER.value)
    record = transfer_video.write(
        model,
        _SOURCE.value,
        _TARGET.value,
        _OUTPUT.value,
        source_start=_SOURCE_START.value,
        target_start=_TARGET_START.value,
        num_frames=_NUM_FRAMES.value,
        horizon=_HORIZON.value,
        context_steps=_CONTEXT.value,
        panel_size=_PANEL.value,
    )
    if model.decoder is None:
        print(
            f"lawm-transfer: no --decoder, so no pictures: wrote the state-space errors per step to "
            f"{record['written'][-1]} instead (a decoder run on this model's states turns them into "
            "frames: lawm-train --config=experiments/configs/decoder.py:WORLD_CONFIG)",
            file=sys.stderr,
        )
    print(
        f"cycle error ratio {record['ratio']:.4f} (cycled / original L1 on A over {record['horizon']} steps "
        f"after {record['context_steps']} context states); wrote {', '.join(record['written'])}"
    )


def run():
    # A model path that is no model, a video that cannot be read or is too short: one line naming it.
    cli.run("lawm-transfer", main, errors=(ValueError, FileNotFoundError, "lawm.checkpoint.CheckpointError"))


if __name__ == "__main__":
    run()
