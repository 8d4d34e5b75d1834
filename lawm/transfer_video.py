"""Action transfer written as a video (lawm-transfer): one clip's latent actions driving another, and back.

`write(model, source, target, output)` reads one clip of each video at the model's frame rate and size,
runs `model.transfer` (what the transfer evaluator does, lawm.evals.transfer, paper §8.3: A's latents drive
B from its context states; the latents re-inferred on that rollout drive A back from A's context) and
writes

  OUTPUT (.mp4, .mkv or .mov; H.264) and OUTPUT.gif beside it, with a decoder: four panels per frame,
      true A | true B | B driven by A's latents | A driven by the cycled latents; the driven panels show
      the decoder's reconstruction of the context states, then the rollout (a red bar under them while
      predicted), under a row of labels;
  OUTPUT.json, always: the cycle error ratio and the state-space L1 error per predicted step of A's
      rollout with its own latents and with the cycled ones (what the evaluator averages).

Everything is computed and encoded before anything is written, and each file is written whole (lawm.files).
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

from lawm import api, files

CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
LABELS = ("A (source)", "B (target)", "B + A's actions", "A + cycled actions")
GAP, HEADER, BAR = 4, 14, 3  # pixels between panels, of the label row, of the "predicted" bar
WHITE, RED = 255, (220, 40, 40)


def write(
    model: api.Model,
    source,
    target,
    output,
    *,
    source_start: float = 0.0,
    target_start: float = 0.0,
    num_frames: int | None = None,
    horizon: int | None = None,
    context_steps: int | None = None,
    panel_size: int = 128,
) -> dict:
    """Writes OUTPUT(.json, and with a decoder the video and .gif; module docstring); returns the record
    written to the JSON file plus "written" (the paths)."""
    output = str(output)
    container = CONTAINERS.get(os.path.splitext(output)[1].lower())
    if container is None:
        raise ValueError(f"the output video must end in one of {', '.join(CONTAINERS)}, got {output}")
    frames = num_frames or model.clip_states * model.frames_per_state
    video_a = api.read_video(source, model, start_s=source_start, num_frames=frames)
    video_b = api.read_video(target, model, start_s=target_start, num_frames=frames)
    result = model.transfer(video_a, video_b, horizon=horizon, context_steps=context_steps, num_frames=frames)
    record = {
        "model": model.source,
        "step": model.step,
        "source": str(source),
        "target": str(target),
        "context_steps": result.context_steps,
        "horizon": result.horizon,
        "ratio": result.ratio,
        "error_original": result.error_original.tolist(),
        "error_cycled": result.error_cycled.tolist(),
    }
    base = os.path.splitext(output)[0]
    pictures = {}
    if model.decoder is not None:  # encoded in full before anything is written
        from data_pipelines import video

        movie = panels(model, result, panel_size)
        pictures[output] = video.encode_test_video(movie, model.fps, container=container)
        pictures[base + ".gif"] = gif(movie, model.fps)
    written = [files.write_atomic(path, data) for path, data in pictures.items()]
    written.append(files.write_json(base + ".json", record))
    return {**record, "written": [str(path) for path in written]}


def panels(model: api.Model, result: api.Transfer, panel_size: int = 128) -> np.ndarray:
    """The output frames (F, H', W', 3): the four panels side by side under a row of labels."""
    context = result.context_steps
    on_b = model.decode(np.concatenate([result.states_b[:context], result.on_b]))
    cycled = model.decode(np.concatenate([result.states_a[:context], result.cycled]))
    count = min(len(result.video_a), len(on_b))
    scale = max(1, math.ceil(panel_size / result.video_a.shape[2]))
    predicted = np.arange(count) >= context * model.frames_per_state
    shown = [result.video_a, result.video_b, on_b, cycled]
    rows = []
    for f in range(count):
        cells = [_enlarge(video[f], scale) for video in shown]
        if predicted[f]:
            for cell in cells[2:]:
                cell[-BAR:] = RED
        rows.append(_row(cells))
    header = _labels(rows[0].shape[1], cells[0].shape[1])
    movie = np.stack([np.concatenate([header, row]) for row in rows])
    pad_h, pad_w = movie.shape[1] % 2, movie.shape[2] % 2  # H.264 (yuv420p) wants even sides
    return np.pad(movie, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=WHITE)


def _enlarge(frame, scale):
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _row(cells):
    spacer = np.full((cells[0].shape[0], GAP, 3), WHITE, np.uint8)
    return np.concatenate([x for cell in cells for x in (cell, spacer)][:-1], axis=1)


def _labels(width, panel_width):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, HEADER), (WHITE,) * 3)
    draw = ImageDraw.Draw(image)
    for i, label in enumerate(LABELS):
        draw.text((i * (panel_width + GAP) + 2, 1), label, fill=(0, 0, 0))
    return np.asarray(image)


def gif(movie, fps: float) -> bytes:
    """The frames as a looping GIF at `fps` (PIL)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in movie]
    buffer = io.BytesIO()
    duration = max(20, round(1000 / fps))
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buffer.getvalue()
