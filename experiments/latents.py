"""lawm-latents: the latent actions of every clip of every video, as one Parquet file.

    lawm-latents --model=WORKDIR_OR_EXPORT --input=VIDEOS --output=latents.parquet

VIDEOS: a folder, a glob, a list file or one video (local or gs://). One row per latent action: source
path, clip start time, step index, time, the latent vector, and the regularizer's statistics of its clip;
streaming and resumable, unreadable or too-short videos skipped and counted (lawm/latent_table.py says how).
"""

from __future__ import annotations

import os

from absl import flags, logging

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_MODEL = flags.DEFINE_string("model", None, "A world model: its lawm-train workdir or a lawm-export folder.")
_STEP = flags.DEFINE_integer("step", None, "With a workdir: this checkpoint (default: the latest).")
_INPUT = flags.DEFINE_string("input", None, "Videos: a folder, a glob, a list file or one video.")
_OUTPUT = flags.DEFINE_string("output", None, "The Parquet file to write.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Clips per device batch.")
flags.mark_flags_as_required(["model", "input", "output"])


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    if _BATCH.value < 1:
        raise ValueError(f"--batch_size must be positive, got {_BATCH.value}")
    import lawm
    from data_pipelines.sources import video_folder
    from lawm import latent_table

    videos = video_folder.list_videos(_INPUT.value)
    model = lawm.load(_MODEL.value, step=_STEP.value)
    summary = latent_table.write(model, videos, _OUTPUT.value, _BATCH.value)
    print(
        f"{summary['latents']} latent actions of {summary['clips']} clips from {summary['videos_read']} of "
        f"{len(videos)} videos -> {_OUTPUT.value}; {len(summary['skipped'])} videos skipped "
        "(unreadable or shorter than one clip)"
    )


def run():
    cli.run("lawm-latents", main, errors=(ValueError, FileNotFoundError, "lawm.checkpoint.CheckpointError"))


if __name__ == "__main__":
    run()
