"""Pictures of planned vs true trajectories (PNG via Pillow), one row per episode.

  synthetic  start frame with the agents' true paths (green) and the executed plan's (red) over the P
             planned steps, the camera's total pan as arrows from the centre (same colours), then the goal
             frame and the frame the executed plan ends on; frames enlarged SCALE times.
  droid      the end effector's x-y path from the summed xyz actions (true green, planned red).
  recon      the robot's x-y path in the start frame (true green, planned red).
Zero- and random-action baselines are not drawn (their scores are in the JSON).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from lawm import files

SCALE = 4  # synthetic frames are 64 px
PANEL = 256  # side of a plotted panel, px
GAP = 4
TRUE, PLANNED = (40, 220, 40), (235, 30, 30)


def _frame(frame_HWC):
    image = Image.fromarray(np.asarray(frame_HWC, np.uint8))
    return image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.NEAREST)


def _path(draw, points_T2, color, offset=(0.0, 0.0), scale=1.0):
    """Polyline of (y, x) points (frame pixels) with a dot at its end."""
    xy = [(offset[1] + scale * x, offset[0] + scale * y) for y, x in np.asarray(points_T2, np.float64)]
    if len(xy) > 1:
        draw.line(xy, fill=color, width=2)
    x, y = xy[-1]
    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)


def _synthetic_row(episode, outcome):
    planned, start = outcome["planned"], _frame(episode.start_frames[-1])
    draw = ImageDraw.Draw(start)
    for i in range(planned["_true_agents"].shape[1]):
        _path(draw, planned["_true_agents"][:, i] * SCALE, TRUE)  # frame pixel p is at p * SCALE
        _path(draw, planned["_agents"][:, i] * SCALE, PLANNED)
    centre = np.array([start.height / 2, start.width / 2])
    for camera, color in ((planned["_true_camera"], TRUE), (planned["_camera"], PLANNED)):
        _path(draw, np.stack([centre, centre + (camera[-1] - camera[0]) * SCALE]), color)
    return [start, _frame(episode.goal_frames[-1]), _frame(planned["_frame"])]


def _plot_row(outcome):
    """One panel: the true and planned x-y paths, scaled together to fit, +x right, +y up."""
    paths = [outcome["planned"]["_true_path"][:, :2], outcome["planned"]["_path"][:, :2]]
    points = np.concatenate(paths)
    low, high = points.min(0), points.max(0)
    scale = (PANEL - 24) / max(float((high - low).max()), 1e-6)
    panel = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for path, color in zip(paths, (TRUE, PLANNED), strict=True):
        # (x, y) -> image (row, col): rows grow downwards, so y is flipped.
        rows_cols = np.stack(
            [PANEL - 12 - (path[:, 1] - low[1]) * scale, 12 + (path[:, 0] - low[0]) * scale], -1
        )
        _path(draw, rows_cols, color)
    return [panel]


def save(protocol: str, outcomes, path) -> None:
    """outcomes: [(Episode, {"planned": scores with the "_" entries, ...})] -> one PNG at `path`."""
    rows = [
        _synthetic_row(episode, outcome) if protocol == "synthetic" else _plot_row(outcome)
        for episode, outcome in outcomes
    ]
    if not rows:
        return
    width = max(sum(p.width for p in row) + GAP * (len(row) - 1) for row in rows)
    height = sum(max(p.height for p in row) for row in rows) + GAP * (len(rows) - 1)
    canvas, y = Image.new("RGB", (width, height), (255, 255, 255)), 0
    for row in rows:
        x = 0
        for panel in row:
            canvas.paste(panel, (x, y))
            x += panel.width + GAP
        y += max(p.height for p in row) + GAP
    png = io.BytesIO()
    canvas.save(png, format="PNG")
    files.write_atomic(path, png.getvalue())
