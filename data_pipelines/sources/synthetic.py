"""The synthetic world: procedurally generated clips with ground-truth actions, lawm's embedded default data.

A clip shows a camera over a wrap-around textured background, with sprites drawn on top in this order:
distractors (moving on their own: exogenous noise), an optional object entering from a border, and 1-3
agents by default (square, disc, triangle, cross or diamond; palette colour; random size). Each agent's
per-step displacement is its action, drawn from a smooth bounded random policy; the camera's pan is an
action too.
Sprites live in frame coordinates (a near layer over a far background), so a pan moves only the background.
With `camera_rotation` the camera is turned by a random quarter turn per clip and actions stay in the
world's frame, so how an action looks depends on a rotation that only the picture shows (a dark band along
the world's top edge): the situation of a robot whose actions are in its base frame, filmed from a camera
placed anew in each episode.

Everything is deterministic per (seed, index) (bit-identical on a given machine and NumPy build; the
background's FFT may differ in the last bits across CPUs) and costs no files: `generate` makes a whole clip,
`initial_state` / `step` / `render` expose the same dynamics one step at a time, so a planner can be scored
against the true world. Replaying a clip's recorded actions through `step` reproduces its frames exactly.

Coordinates: (y, x) in pixels, y down; pixel (i, j) covers [i, i+1) x [j, j+1). Positions, displacements and
radii lie on a 1/256 px grid, so float32 sums and differences are exact (below 2**16 px): a recorded action
is bit-exactly the displacement applied.

Dimension keys: F frames, H = W = image size, C = 3 colours, A action dim (2 * max_agents + 2), and one of
our own, not in lawm's table: O sprites of one group (the agents, the distractors or the entering object).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import numpy as np

QUANTUM = 1.0 / 256.0
# The policy's stationary standard deviation as a fraction of its bound: the clip binds ~5 % of the time,
# so actions keep the AR(1) autocorrelation.
POLICY_STD_FRACTION = 0.5
# The background canvas is this many frames wide and wraps around, so the camera can pan forever.
BACKGROUND_SCALE = 2
SHAPES = ("square", "disc", "triangle", "cross", "diamond")
# Distinct saturated colours (plus black and white) as RGB hex; the background is muted, so sprites stand out.
_PALETTE_HEX = "e6194b 3cb44b ffe119 0082c8 f58230 911eb4 46f0f0 f032e6 fafafa 0f0f0f aa6e28 800000"
PALETTE = np.array([list(bytes.fromhex(rgb)) for rgb in _PALETTE_HEX.split()], np.float32)
# Background colour: RGB = this (3, 3) matrix x (luminance, two opponent-colour fields), mostly luminance.
_COLOR_MIX = np.array([[0.9, 0.3, 0.0], [0.9, -0.15, 0.26], [0.9, -0.15, -0.26]], np.float32)
# Held-out splits draw from disjoint seeds: split offset + seed, with 0 <= seed < 2**32.
SPLIT_SEED_OFFSETS = {"train": 0, "eval": 2**32}
DEFAULT_LENGTH = 2**31 - 1
_WORLD_STREAM, _POLICY_STREAM = 0, 1


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """What the synthetic world looks like and how it moves. Distances in pixels, speeds in px per step."""

    image_size: int = 64
    num_frames: int = 16
    fps: float = 4.0  # nominal, for bookkeeping: one step is 1 / fps seconds
    num_agents: tuple[int, int] = (1, 3)  # (min, max) per clip
    num_distractors: tuple[int, int] = (0, 2)  # (min, max) per clip
    camera_pan: bool = True
    max_pan: float = 2.0  # bound on each pan component
    max_speed: float = 3.0  # bound on each agent / distractor displacement component
    # AR(1) coefficient of the agents' and distractors' velocities (and the pan). At 0.85 most motion is
    # predictable from the past, leaving the latent action little to carry; 0.5 keeps it informative.
    smoothness: float = 0.5
    entering_objects: float = 0.3  # probability that a clip has an object entering from a border
    sprite_radius: tuple[float, float] = (3.0, 7.0)  # (min, max) half-extent of a sprite along each axis
    texture_scale: float = 3.0  # correlation length of the background texture
    texture_contrast: float = 40.0  # standard deviation of the background texture, in 0..255 units
    # Amplitude (0..255 units) of a pattern painted on the agents, moving with them (a smooth checkerboard
    # of period agent_pattern_period px). 0: plain agents. Patterned agents change every pixel they cover
    # as they move, as a textured object (a person) does, so their motion carries more signal.
    agent_pattern: float = 0.0
    agent_pattern_period: float = 6.0
    # Turn the camera by a random multiple of 90 degrees per clip (np.rot90's sense). Actions are in the
    # world's frame, positions in the frame's: a world-frame displacement (dy, dx) shows as (-dx, dy) after
    # one quarter turn. A dark band of image_size / 8 px along the world's top edge shows the turn.
    camera_rotation: bool = False

    def __post_init__(self):
        _positive_int(self, "image_size", minimum=16)
        _positive_int(self, "num_frames", minimum=2)
        _number(self, "fps", low=0.0, low_open=True)
        _int_range(self, "num_agents", minimum=1)
        _int_range(self, "num_distractors", minimum=0)
        for field in ("camera_pan", "camera_rotation"):
            if not isinstance(getattr(self, field), bool):
                _fail(field, "must be a bool", getattr(self, field))
        _number(self, "max_pan", low=0.0)
        _number(self, "max_speed", low=0.0)
        _number(self, "smoothness", low=0.0, high=1.0, high_open=True)
        _number(self, "entering_objects", low=0.0, high=1.0)
        radius = _pair(self, "sprite_radius", float)
        if not 1.0 <= radius[0] <= radius[1]:
            _fail("sprite_radius", "must be (min, max) with 1 <= min <= max", self.sprite_radius)
        # Room for the largest agent to take a full step and bounce inside the frame.
        if 2 * radius[1] + 2 * self.max_speed + 2 > self.image_size:
            _fail("sprite_radius", "is too large for image_size and max_speed", self.sprite_radius)
        _number(self, "texture_scale", low=0.0, low_open=True)
        _number(self, "texture_contrast", low=0.0, high=128.0)
        _number(self, "agent_pattern", low=0.0, high=128.0)
        _number(self, "agent_pattern_period", low=0.0, low_open=True)

    @property
    def max_agents(self) -> int:
        return self.num_agents[1]


def _fail(field, message, value):
    raise ValueError(f"WorldConfig.{field} {message}, got {value!r}")


def _positive_int(config, field, minimum):
    value = getattr(config, field)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(field, f"must be an integer >= {minimum}", value)


def _number(config, field, low=None, high=None, low_open=False, high_open=False):
    value = getattr(config, field)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        _fail(field, f"must be a finite number in {bounds}", value)


def _pair(config, field, kind):
    """Normalises a (min, max) pair given as a list or tuple (configs often hold lists) to a tuple."""
    value = getattr(config, field)
    numbers = (int,) if kind is int else (int, float)
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, numbers) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        _fail(field, f"must be a (min, max) pair of {kind.__name__}s", value)
    object.__setattr__(config, field, tuple(kind(v) for v in value))
    return getattr(config, field)


def _int_range(config, field, minimum):
    low, high = _pair(config, field, int)
    if not minimum <= low <= high:
        _fail(field, f"must be (min, max) with {minimum} <= min <= max", getattr(config, field))


def action_dim(config: WorldConfig) -> int:
    """A = 2 * max_agents + 2: (dy, dx) per agent slot, then the camera pan (dy, dx)."""
    return 2 * config.max_agents + 2


def action_names(config: WorldConfig) -> list[str]:
    """Names of the action components, in the layout of `generate`'s `actions`."""
    agents = [f"agent{i}_{axis}" for i in range(config.max_agents) for axis in ("dy", "dx")]
    return [*agents, "camera_dy", "camera_dx"]


class Sprites(NamedTuple):
    """A group of O sprites: centres (O, 2) float32 (y, x), shape ids (O,) into SHAPES, radii (O,), colours
    (O, 3) float32."""

    position: np.ndarray
    shape: np.ndarray
    radius: np.ndarray
    color: np.ndarray


class WorldState(NamedTuple):
    """The full state of one synthetic world; `step` returns a new one (arrays are never mutated)."""

    config: WorldConfig
    t: int  # steps taken since the first frame
    # (period + H + 1, period + W + 1, 3) float32: a texture of period BACKGROUND_SCALE x H, tiled (_texture)
    background: np.ndarray
    camera: np.ndarray  # (2,) float32: top-left of the view on the texture, not wrapped (mod the period)
    agents: Sprites  # max_agents slots; the first num_agents are present, the rest have NaN positions
    num_agents: int
    distractors: Sprites  # O = num_distractors sprites
    distractor_velocity: np.ndarray  # (O, 2) float32
    distractor_noise: np.ndarray  # (F - 1, O, 2) float32 innovations of the velocity AR(1), used cyclically
    entering: Sprites  # 0 or 1 sprites, starting just outside the frame
    entering_velocity: np.ndarray  # (O, 2) float32
    entering_start: np.ndarray  # (O,) int: the step at which each starts to move
    rotation: int = 0  # quarter turns of the camera (camera_rotation); actions are turned by it


# --- dynamics -------------------------------------------------------------------------------------------


def _quantise(x):
    """Rounds to the 1/256 px grid, as float32 (exact: grid values below 2**16 need <= 24 bits)."""
    return np.rint(np.asarray(x) * (1 / QUANTUM)).astype(np.float32) * np.float32(QUANTUM)


def _clip(x, low, high):
    # np.clip costs several times more than this on the tiny arrays of the dynamics.
    return np.minimum(np.maximum(x, low), high)


def _grid_bound(bound):
    """The largest grid value <= bound: clipping to it keeps quantised values within the bound."""
    return math.floor(bound / QUANTUM) * QUANTUM


def _limits(radius_O, size):
    """Range (O, 1) of a sprite centre that keeps the sprite (and its anti-aliased edge) inside the frame."""
    return (radius_O + 0.5)[:, None], (size - radius_O - 0.5)[:, None]


def _turn(vectors, quarter_turns):
    """World-frame (dy, dx) vectors (..., 2) as the camera sees them after `quarter_turns` turns (np.rot90's
    sense: (dy, dx) -> (-dx, dy) per turn; exact on the grid). Negative turns undo positive ones."""
    turns = quarter_turns % 4
    if turns == 0:
        return vectors
    dy, dx = vectors[..., 0], vectors[..., 1]
    turned = {1: (-dx, dy), 2: (-dy, -dx), 3: (dx, -dy)}[turns]
    return np.stack(turned, axis=-1).astype(vectors.dtype)


def _reflect(target_O2, low_O1, high_O1):
    """Mirrors positions that crossed a wall back inside; returns them and which components bounced."""
    below, above = target_O2 < low_O1, target_O2 > high_O1
    target_O2 = np.where(below, 2 * low_O1 - target_O2, np.where(above, 2 * high_O1 - target_O2, target_O2))
    return _clip(target_O2, low_O1, high_O1), below | above


@functools.lru_cache(maxsize=64)
def _action_bounds(config):
    """Per-row bound (max_agents + 1, 1) of an action reshaped to (max_agents + 1, 2): agent speed, then
    pan."""
    pan = _grid_bound(config.max_pan) if config.camera_pan else 0.0
    bounds = np.array([_grid_bound(config.max_speed)] * config.max_agents + [pan], np.float32)[:, None]
    bounds.flags.writeable = False  # shared by every call
    return bounds


def step(state: WorldState, action) -> WorldState:
    """Applies an action (A,): agent displacements then pan, as in `generate`; advances the rest.

    The displacement applied is the action clipped to the speed bounds (pan is 0 when camera_pan is off),
    rounded to the 1/256 px grid, turned by the camera's rotation (world frame -> frame) and clipped so
    each agent stays inside the frame (agents stop at walls; the random policy of `generate` bounces them
    before that, so its actions pass through unchanged). Components of absent agents are ignored.
    """
    config = state.config
    size, n = config.image_size, state.num_agents
    action = np.asarray(action, np.float32)
    if action.shape != (action_dim(config),):
        raise ValueError(f"action must have shape ({action_dim(config)},), got {action.shape}")
    bounds = _action_bounds(config)
    move = _turn(_quantise(_clip(action.reshape(-1, 2), -bounds, bounds)), state.rotation)

    agents = state.agents
    low, high = _limits(agents.radius[:n], size)
    agent_position = agents.position.copy()
    agent_position[:n] = _clip(agent_position[:n] + move[:n], low, high)

    distractors, velocity = state.distractors, state.distractor_velocity
    if len(distractors.radius):
        rho = config.smoothness
        innovation = state.distractor_noise[state.t % len(state.distractor_noise)]
        speed = _grid_bound(config.max_speed)
        sigma = POLICY_STD_FRACTION * speed * math.sqrt(1 - rho * rho)
        velocity = _quantise(_clip(rho * velocity + sigma * innovation, -speed, speed))
        target, bounced = _reflect(distractors.position + velocity, *_limits(distractors.radius, size))
        velocity = np.where(bounced, -velocity, velocity)
        distractors = distractors._replace(position=target)

    moving = (state.t >= state.entering_start)[:, None]
    entering_position = state.entering.position + np.where(moving, state.entering_velocity, 0.0)
    return state._replace(
        t=state.t + 1,
        camera=state.camera + move[-1],
        agents=agents._replace(position=agent_position),
        distractors=distractors,
        distractor_velocity=velocity.astype(np.float32),
        entering=state.entering._replace(position=entering_position.astype(np.float32)),
    )


# --- initial state --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _texture_filter(period, scale):
    """The rfft2-domain Gaussian filter (period, period // 2 + 1) of std `scale` px, and where it passes."""
    fy, fx = np.fft.fftfreq(period)[:, None], np.fft.rfftfreq(period)[None, :]
    gain = np.exp(-2 * (np.pi * scale) ** 2 * (fy * fy + fx * fx)).astype(np.float32)
    gain[0, 0] = 0.0  # no DC: the base colour sets the mean
    gain.flags.writeable = False
    return gain, np.flatnonzero(gain > 1e-3)


def _texture(rng, period, size, config):
    """A seamless coloured texture of the given period, tiled to (period + size + 1) squared so that every
    view of size + 1 pixels (bilinear sampling needs one more) is a plain slice. Gaussian-filtered white
    noise drawn directly in the frequency domain (only where the filter passes), coloured by _COLOR_MIX
    around a random base colour. float32, channels last."""
    gain, band = _texture_filter(period, config.texture_scale)
    draws = rng.standard_normal((2, 3, len(band)), dtype=np.float32)
    spectrum = np.zeros((3, gain.size), np.complex64)
    spectrum[:, band] = (draws[0] + 1j * draws[1]) * gain.ravel()[band]
    fields = np.fft.irfft2(spectrum.reshape(3, *gain.shape), s=(period, period))
    fields /= fields[:, ::4, ::4].std(axis=(1, 2), keepdims=True) + 1e-12
    texture = (fields.reshape(3, -1).T @ (config.texture_contrast * _COLOR_MIX).T).reshape(period, period, 3)
    texture += rng.uniform(70.0, 185.0, size=3).astype(np.float32)
    np.clip(texture, 0.0, 255.0, out=texture)
    tiled = np.empty((period + size + 1, period + size + 1, 3), np.float32)
    tiled[:period, :period] = texture
    tiled[:period, period:] = texture[:, : size + 1]
    tiled[period:] = tiled[: size + 1]
    return tiled


def _sprites(rng, count, config, colors):
    radius = _quantise(rng.uniform(*config.sprite_radius, size=count))
    jitter = rng.uniform(-15.0, 15.0, size=(count, 3))
    return Sprites(
        position=np.zeros((count, 2), np.float32),
        shape=rng.integers(0, len(SHAPES), size=count).astype(np.int32),
        radius=radius,
        color=np.clip(PALETTE[colors] + jitter, 0.0, 255.0).astype(np.float32),
    )


def _inside(rng, sprites, size):
    low, high = _limits(sprites.radius, size)
    return sprites._replace(position=_quantise(low + rng.uniform(size=sprites.position.shape) * (high - low)))


def _entering_object(rng, config, color):
    """One sprite just outside a random border, moving inwards from a random step in the first half."""
    size, speed = config.image_size, config.max_speed
    sprite = _sprites(rng, 1, config, color)
    outside = float(sprite.radius[0]) + 1.0
    along = rng.uniform(0.0, size)
    inward, sideways = rng.uniform(0.5, 1.0) * max(speed, 1.0), rng.uniform(-0.25, 0.25) * speed
    border = int(rng.integers(4))  # top, bottom, left, right
    position, velocity = {
        0: ((-outside, along), (inward, sideways)),
        1: ((size + outside, along), (-inward, sideways)),
        2: ((along, -outside), (sideways, inward)),
        3: ((along, size + outside), (sideways, -inward)),
    }[border]
    start = rng.integers(0, config.num_frames // 2 + 1, size=1)
    return sprite._replace(position=_quantise([position])), _quantise([velocity]), start


def initial_state(config: WorldConfig, seed: int, index: int) -> WorldState:
    """The world at the first frame of clip `index` of `seed` (the state `generate` starts from)."""
    rng = np.random.default_rng([seed, index, _WORLD_STREAM])
    size, max_agents = config.image_size, config.max_agents
    num_agents = int(rng.integers(config.num_agents[0], max_agents + 1))
    num_distractors = int(rng.integers(config.num_distractors[0], config.num_distractors[1] + 1))
    has_entering = bool(rng.uniform() < config.entering_objects)
    num_sprites = max_agents + num_distractors + 1
    colors = rng.choice(len(PALETTE), size=num_sprites, replace=num_sprites > len(PALETTE))

    background = _texture(rng, BACKGROUND_SCALE * size, size, config)
    camera = _quantise(rng.uniform(0.0, BACKGROUND_SCALE * size, size=2))
    agents = _inside(rng, _sprites(rng, max_agents, config, colors[:max_agents]), size)
    agents.position[num_agents:] = np.nan
    distractors = _inside(rng, _sprites(rng, num_distractors, config, colors[max_agents:-1]), size)
    speed = _grid_bound(config.max_speed)
    velocity = _quantise(
        np.clip(POLICY_STD_FRACTION * speed * rng.standard_normal((num_distractors, 2)), -speed, speed)
    )
    noise = rng.standard_normal((config.num_frames - 1, num_distractors, 2)).astype(np.float32)
    entering, entering_velocity, entering_start = _entering_object(rng, config, colors[-1:])
    if not has_entering:
        entering = Sprites(*(x[:0] for x in entering))
        entering_velocity, entering_start = entering_velocity[:0], entering_start[:0]
    rotation = int(rng.integers(4)) if config.camera_rotation else 0  # last: other worlds keep their clips
    return WorldState(
        config=config,
        t=0,
        background=background,
        camera=camera,
        agents=agents,
        num_agents=num_agents,
        distractors=distractors,
        distractor_velocity=velocity,
        distractor_noise=noise,
        entering=entering,
        entering_velocity=entering_velocity,
        entering_start=entering_start,
        rotation=rotation,
    )


# --- rendering ------------------------------------------------------------------------------------------
# Only exactly rounded float ops (+ - * / sqrt min max), each pixel computed independently, so a frame
# rendered alone equals the same frame rendered inside a clip, bit for bit.


def _square(dy, dx, r):
    return np.maximum(np.abs(dy), np.abs(dx)) - r


def _disc(dy, dx, r):
    return np.sqrt(dy * dy + dx * dx) - r


def _triangle(dy, dx, r):
    # Equilateral, apex up, inradius r/2: its extent is [-r, r/2] in y and +-0.87 r in x.
    return np.maximum(dy, 0.8660254 * np.abs(dx) - 0.5 * dy) - 0.5 * r


def _cross(dy, dx, r):
    ady, adx = np.abs(dy), np.abs(dx)
    return np.minimum(np.maximum(ady - r, adx - r / 3), np.maximum(adx - r, ady - r / 3))


def _diamond(dy, dx, r):
    return (np.abs(dy) + np.abs(dx) - r) * 0.70710677


_SIGNED_DISTANCE = (_square, _disc, _triangle, _cross, _diamond)  # indexed like SHAPES


def _sample_background(background, camera_F2, size):
    """The (F, size, size, 3) float32 views of the tiled background at sub-pixel camera positions (bilinear).
    One frame at a time: the working set stays in cache (4x faster than one pass over the clip)."""
    period = background.shape[0] - size - 1
    origin_F2 = np.floor(camera_F2)
    frac_F2 = camera_F2 - origin_F2
    frames = np.empty((len(camera_F2), size, size, 3), np.float32)
    for frame, (y, x), (fy, fx) in zip(frames, origin_F2.astype(np.int64) % period, frac_F2, strict=True):
        crop = background[y : y + size + 1, x : x + size + 1]
        top = crop[:-1]
        rows = crop[1:] - top
        rows *= fy
        rows += top
        left = rows[:, :-1]
        np.subtract(rows[:, 1:], left, out=frame)
        frame *= fx
        frame += left
    return frames


def _pattern(dy, dx, period):
    """A smooth checkerboard in [-1, 1] over sprite-local coordinates: the product of two triangle waves
    of `period` px (exactly rounded ops only, like the rest of the renderer)."""
    wave = lambda u: np.abs(np.remainder(u / (period / 2), 2.0) - 1.0) * 2.0 - 1.0  # noqa: E731
    return wave(dy) * wave(dx)


def _draw(frames_FHWC, position_F2, shape, radius, color, pattern, period):
    """Alpha-blends one sprite (anti-aliased over ~1 px) into the frames, in place. Coverage is computed in
    the box the trajectory spans; only covered pixels are blended (most of the box is not covered).
    `pattern` > 0 paints _pattern (`period` px), moving with the sprite, at that amplitude over its colour."""
    num_frames, size = frames_FHWC.shape[:2]
    reach = float(radius) + 2.0
    (y0, x0), (y1, x1) = np.floor(position_F2.min(0) - reach), np.ceil(position_F2.max(0) + reach)
    y0, x0, y1, x1 = max(int(y0), 0), max(int(x0), 0), min(int(y1), size), min(int(x1), size)
    if y0 >= y1 or x0 >= x1:
        return
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5)[None, :, None] - position_F2[:, 0, None, None]
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5)[None, None, :] - position_F2[:, 1, None, None]
    alpha = np.minimum(np.maximum(0.5 - _SIGNED_DISTANCE[shape](dy, dx, radius), 0.0), 1.0)
    covered = np.nonzero(alpha)
    f, y, x = covered
    pixels = (f * size + y + y0) * size + x + x0
    flat = frames_FHWC.reshape(num_frames * size * size, 3)
    old = flat[pixels]
    if pattern:
        texture = pattern * _pattern(dy, dx, period)[covered]
        color = np.minimum(np.maximum(color + texture[:, None], 0.0), 255.0)
    flat[pixels] = old + alpha[covered][:, None] * (color - old)


HORIZON_COLOR = 20.0  # the band that shows a turned camera's rotation: darker than nearly all backgrounds


def _draw_horizon(frames_FHWC, quarter_turns):
    """Paints the band along the world's top edge, in front of everything (as a robot's own body in view):
    the frame's top, left, bottom or right 1/8 for 0, 1, 2 or 3 quarter turns."""
    width = frames_FHWC.shape[1] // 8
    band = {0: np.s_[:, :width], 1: np.s_[:, :, :width], 2: np.s_[:, -width:], 3: np.s_[:, :, -width:]}
    frames_FHWC[band[quarter_turns % 4]] = HORIZON_COLOR


def _render(state, camera_F2, agents_FO2, distractors_FO2, entering_FO2):
    """Frames (F, H, W, 3) uint8 of a world whose sprites and camera follow the given trajectories."""
    frames = _sample_background(state.background, camera_F2, state.config.image_size)
    layers = [
        (distractors_FO2, state.distractors),
        (entering_FO2, state.entering),
        (agents_FO2[:, : state.num_agents], state.agents),
    ]
    period = state.config.agent_pattern_period
    for layer, (positions_FO2, sprites) in enumerate(layers):
        pattern = state.config.agent_pattern if layer == len(layers) - 1 else 0.0
        for i in range(positions_FO2.shape[1]):
            shape, radius, color = sprites.shape[i], sprites.radius[i], sprites.color[i]
            _draw(frames, positions_FO2[:, i], shape, radius, color, pattern, period)
    if state.config.camera_rotation:
        _draw_horizon(frames, state.rotation)
    frames += 0.5  # round to nearest; values stay in [0, 255]: every step is a convex combination
    return frames.astype(np.uint8)


def render(state: WorldState) -> np.ndarray:
    """The current frame (H, W, 3) uint8."""
    positions = (state.agents.position, state.distractors.position, state.entering.position)
    return _render(state, state.camera[None], *(p[None] for p in positions))[0]


# --- clips ----------------------------------------------------------------------------------------------


def generate(config: WorldConfig, seed: int, index: int) -> dict:
    """Clip `index` of `seed`: frames and the ground truth that produced them.

    Returns a dict of numpy arrays (and one int):
      video: (F, H, W, 3) uint8.
      actions: (F-1, A) float32 (A = action_dim(config) = 2 * max_agents + 2); row t takes frame t to t+1:
        [agent_0 (dy, dx), ..., agent_{max_agents-1} (dy, dx), camera pan (dy, dx)], in pixels, in the world's
        frame (the frame's unless camera_rotation: then turned as `_turn` says by the clip's
        `initial_state(...).rotation`). Absent agents' entries are 0. A positive pan moves the camera
        down / right, so the background moves up / left in the frame; it is 0 throughout when camera_pan
        is off.
      agent_positions: (F, max_agents, 2) float32 (y, x) sprite centres in frame pixels; present agents
        fill the first num_agents slots, absent ones are NaN.
      camera_positions: (F, 2) float32 top-left of the view on the background (not wrapped), so
        camera_positions[t+1] - camera_positions[t] is the pan in actions[t] (turned).
      num_agents: int.

    The policy: each agent's velocity (and the pan) follows an AR(1) process with coefficient
    config.smoothness and stationary std POLICY_STD_FRACTION x its bound, clipped to the bound per
    component and rounded to the 1/256 px grid. An agent whose step would cross a wall is reflected off
    it (its velocity flips), so it stays fully inside the frame; the recorded action is the displacement
    actually applied (in the world's frame), and agent_positions[t+1] - agent_positions[t] equals it
    exactly (turned). The policy acts in the frame; its moves are isotropic, so their law is the same in
    both frames.
    """
    state = initial_state(config, seed, index)
    rng = np.random.default_rng([seed, index, _POLICY_STREAM])
    max_agents, n, rho = config.max_agents, state.num_agents, config.smoothness
    bounds = _action_bounds(config)
    sigma = POLICY_STD_FRACTION * bounds
    # Stationary start, so actions are AR(1) from the first step on.
    velocity = sigma * rng.standard_normal((max_agents + 1, 2))
    innovations = (
        math.sqrt(1 - rho * rho) * sigma * rng.standard_normal((config.num_frames - 1, max_agents + 1, 2))
    )
    low, high = _limits(state.agents.radius[:n], config.image_size)

    trajectory = [state]
    actions = np.zeros((config.num_frames - 1, max_agents + 1, 2), np.float32)
    for t in range(config.num_frames - 1):
        velocity = rho * velocity + innovations[t]
        move = _quantise(_clip(velocity, -bounds, bounds))
        position = state.agents.position[:n]
        target, bounced = _reflect(position + move[:n], low, high)
        velocity[:n] = np.where(bounced, -velocity[:n], velocity[:n])
        actions[t, :n] = target - position
        actions[t, -1] = move[-1]
        actions[t] = _turn(actions[t], -state.rotation)  # frame -> world; `step` turns it back
        state = step(state, actions[t].reshape(-1))
        trajectory.append(state)

    camera = np.stack([s.camera for s in trajectory])
    agents = np.stack([s.agents.position for s in trajectory])
    video = _render(
        state,
        camera,
        agents,
        np.stack([s.distractors.position for s in trajectory]),
        np.stack([s.entering.position for s in trajectory]),
    )
    return {
        "video": video,
        "actions": actions.reshape(config.num_frames - 1, -1),
        "agent_positions": agents,
        "camera_positions": camera,
        "num_agents": n,
    }


class SyntheticSource:
    """A grain random-access source (`__len__`, `__getitem__`) of `generate` clips.

    Record i of split s is generate(config, SPLIT_SEED_OFFSETS[s] + seed, i): splits use disjoint seeds, so
    "eval" clips are held out from "train" ones for every seed in [0, 2**32).
    """

    def __init__(
        self,
        config: WorldConfig | None = None,
        *,
        seed: int = 0,
        split: str = "train",
        length: int = DEFAULT_LENGTH,
    ):
        if split not in SPLIT_SEED_OFFSETS:
            raise ValueError(f"split must be one of {sorted(SPLIT_SEED_OFFSETS)}, got {split!r}")
        if not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        if not isinstance(length, int) or length <= 0:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.config = config if config is not None else WorldConfig()
        self.seed, self.split, self.length = seed, split, length

    def __len__(self) -> int:
        return self.length

    @property
    def action_names(self) -> list[str]:
        return action_names(self.config)

    def __getitem__(self, index) -> dict:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a source of length {self.length}")
        return generate(self.config, SPLIT_SEED_OFFSETS[self.split] + self.seed, index)

    def __repr__(self) -> str:
        # grain checkpoints identify a source by its repr.
        return (
            f"SyntheticSource(config={self.config!r}, seed={self.seed}, split={self.split!r}, "
            f"length={self.length})"
        )
