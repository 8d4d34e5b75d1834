"""Real footage with a known camera: a window panned (and zoomed) over real video by a recorded random motion.

The content is real (any file source: clip records or video files, read as square `canvas`-pixel clips)
and the camera action is ground truth. Element i takes clip i % len(frames) of the inner source and moves
an output window over it: the window starts at a random place and scale, and at every frame it pans by
(dx, dy) drawn uniformly in [-max_pan, max_pan]^2 output pixels and scales by exp(u), u uniform in
[-max_zoom, max_zoom]. A move that would leave the canvas is mirrored (the other direction), then clamped;
`actions` record the move actually made, so they stay exact at the edges. Each window is resampled to
`image_size` square (bilinear, at exact sub-pixel positions).

    {"video": uint8 (F, S, S, 3), "actions": float32 (F-1, 3)}: camera_dx, camera_dy (the window's move
    from frame k to k + 1 in output pixels of frame k; the picture moves the other way), camera_zoom
    (log of the window's scale change; > 0 zooms out).

The motion of element i is drawn from `np.random.default_rng([seed, split, i])`: runs repeat exactly and the
train and eval splits (different videos as well) draw different motions. `repeats` makes the source
`repeats` x len(frames) long, each clip of the inner source seen under `repeats` different motions per pass.

Dimension keys: F frames, S output size, C canvas size, A = 3 action components.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ACTION_NAMES = ["camera_dx", "camera_dy", "camera_zoom"]
_SPLITS = {"train": 0, "eval": 1}


def pan_windows(
    num_frames: int, canvas: int, image_size: int, max_pan: float, max_zoom: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Window boxes (F, 4: left, top, right, bottom in canvas pixels) and the actions (F-1, 3) they make."""
    low, high = image_size * 0.75, min(image_size * 1.25, canvas)  # window side range, canvas pixels
    side = float(rng.uniform(low, high)) if max_zoom > 0 else float(min(image_size, canvas))
    centre = rng.uniform(side / 2, canvas - side / 2, size=2)
    boxes, actions = [], []
    for k in range(num_frames):
        boxes.append([*(centre - side / 2), *(centre + side / 2)])
        if k == num_frames - 1:
            break
        scale = side / image_size  # canvas pixels per output pixel of frame k
        zoom = rng.uniform(-max_zoom, max_zoom)
        new_side = float(np.clip(side * np.exp(zoom), low, high)) if max_zoom > 0 else side
        move = rng.uniform(-max_pan, max_pan, size=2) * scale
        room_low, room_high = new_side / 2, canvas - new_side / 2
        proposed = centre + move
        outside = (proposed < room_low) | (proposed > room_high)
        new_centre = np.clip(np.where(outside, centre - move, proposed), room_low, room_high)
        actions.append([*((new_centre - centre) / scale), np.log(new_side / side)])
        centre, side = new_centre, new_side
    return np.asarray(boxes), np.asarray(actions, np.float32).reshape(num_frames - 1, 3)


def render(frames_FCC3: np.ndarray, boxes_F4: np.ndarray, image_size: int) -> np.ndarray:
    """Each frame's window resampled to image_size square (uint8 (F, S, S, 3)): PIL's bilinear filter at
    the box's sub-pixel position, widened when the window is larger than the output (no aliasing)."""
    out = np.empty((len(frames_FCC3), image_size, image_size, 3), np.uint8)
    for k, (frame, box) in enumerate(zip(frames_FCC3, boxes_F4, strict=True)):
        picture = Image.fromarray(frame).resize(
            (image_size, image_size), Image.Resampling.BILINEAR, box=tuple(float(v) for v in box)
        )
        out[k] = np.asarray(picture)
    return out


class CameraPanSource:
    """A grain random-access source: `frames` (a source of canvas x canvas clips) under a known camera."""

    action_names = ACTION_NAMES

    def __init__(
        self,
        frames,
        *,
        image_size: int,
        canvas: int,
        max_pan: float,
        max_zoom: float = 0.0,
        repeats: int = 1,
        seed: int = 0,
        split: str = "train",
    ):
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        if not 0 < image_size <= canvas:
            raise ValueError(f"camera_pan.canvas ({canvas}) must be >= the image size ({image_size})")
        if not max_pan >= 0 or not max_zoom >= 0 or repeats < 1:
            raise ValueError(
                f"camera_pan needs max_pan >= 0, max_zoom >= 0, repeats >= 1; got {max_pan}, {max_zoom}, "
                f"{repeats}"
            )
        self.frames, self.image_size, self.canvas = frames, image_size, canvas
        self.max_pan, self.max_zoom, self.repeats = float(max_pan), float(max_zoom), int(repeats)
        self.seed, self.split = seed, split

    def __len__(self) -> int:
        return len(self.frames) * self.repeats

    def __repr__(self) -> str:  # grain checkpoints identify a source by its repr
        return (
            f"CameraPanSource({self.frames!r}, image_size={self.image_size}, canvas={self.canvas}, "
            f"max_pan={self.max_pan}, max_zoom={self.max_zoom}, repeats={self.repeats}, seed={self.seed}, "
            f"split={self.split!r})"
        )

    def __getitem__(self, index) -> dict:
        index = int(index)
        clip = self.frames[index % len(self.frames)]["video"]
        if clip.shape[1:3] != (self.canvas, self.canvas):
            raise ValueError(f"camera_pan: the inner source yields {clip.shape[1:3]} frames, not the canvas")
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        boxes, actions = pan_windows(
            len(clip), self.canvas, self.image_size, self.max_pan, self.max_zoom, rng
        )
        return {"video": render(clip, boxes, self.image_size), "actions": actions}
