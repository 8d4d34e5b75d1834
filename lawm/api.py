"""A trained model on any video: `lawm.load(path)` and what the model it returns gives.

    import lawm
    model = lawm.load("/tmp/lawm_videos")               # a lawm-train workdir (latest step) or a lawm-export
    frames = lawm.api.read_video("clip.mp4", model)     # uint8 (F, H, W, 3) at the model's frame rate
    z_UL = model.latent_actions(frames)                 # one latent per pair of consecutive states
    predicted_UNE = model.predict(frames, z_UL)         # teacher-forced predictions of states 1..T-1
    future_PNE = model.rollout(model.encode(frames)[:2], z_UL[:5], steps=4)
    result = model.transfer(frames_a, frames_b)         # A's latents driving B, and back: result.ratio
    pictures = lawm.load(path, decoder=DECODER_RUN).decode(future_PNE)

Frames: uint8 RGB (F, H, W, 3) of any size and length, sampled at the model's frame rate (`model.fps`,
the training clips'; `read_video` decodes a file at it). Frames not of the model's size are resized (the
short side to the model's, bilinear with antialiasing) and centre-cropped, as evaluation clips are; a
video is cut to whole states (k = `model.frames_per_state` frames each: the tubelet, or 1 for a per-frame
encoder), and must hold at least two.

Long videos: everything is computed on windows of the training clip's length (T states), the only input
length the encoder, the IDM and the world model were trained on. A tubelet-causal encoder lets each state
see every earlier frame of its input, so encoding a whole long video would show the model histories (and
RoPE positions) it never saw, at a cost quadratic in the length. Window w covers states w(T-1) ..
w(T-1)+T-1 (consecutive windows share one state) and the last window ends at the video's last state; the
latent of the pair (s_j, s_{j+1}) and the prediction of s_{j+1} come from the first window holding both
states, so every pair is seen exactly as in training. `encode` gives each state as the first window holding
it computes it. A video no longer than a training clip is one window; a transfer runs on one clip, as the
transfer evaluator does (lawm.evals.transfer, whose jitted computation it calls).

Batching and compilation: windows run in batches of up to CHUNK, a smaller batch padded to a power of two,
so a model compiles each computation for a handful of shapes, once (jax.jit caches by shape). Params sit
on one device (the first: an accelerator when there is one, else the CPU).

Dimension keys (lawm's table): F frames, H/W pixels, T states (S in a whole video), N tokens per state,
E state dim, L latent dim, U latents (S - 1, or context + steps - 1 for a rollout), P predicted steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import sources
from lawm import config as config_lib
from lawm import export, systems
from lawm.evals import common, transfer
from lawm.models.decoder import to_uint8

CHUNK = 8  # windows per device batch


def load(path, step: int | None = None, decoder=None, device=None) -> Model:
    """The world model at `path` (a lawm-train workdir: its latest checkpoint, or `step`; or a lawm-export
    folder), with the decoder run `decoder` (a workdir, or an export holding one) for `decode`; an export
    that holds a decoder brings it along."""
    device = device or jax.devices()[0]
    weights = export.read(path, step, device)
    if decoder is not None:
        weights.decoder = export.read_decoder(decoder, device)
        export.check_decoder(weights, weights.decoder, str(decoder))
    return Model(weights, device=device, source=str(path))


@dataclasses.dataclass
class Transfer:
    """A's latents applied to B, and the cycle back to A (lawm.evals.transfer), for one pair of clips."""

    ratio: float  # error_cycled / error_original, means over the horizon (the evaluator's transfer/ratio)
    error_original: np.ndarray  # (P,) L1 per step of A's rollout with its own latents, against A's states
    error_cycled: np.ndarray  # (P,) the same with the latents re-inferred on B driven by A's latents
    context_steps: int
    horizon: int
    video_a: np.ndarray  # (F, H, W, 3): the frames used, at the model's size
    video_b: np.ndarray
    states_a: np.ndarray  # (T, N, E)
    states_b: np.ndarray
    latents_a: np.ndarray  # (U, L) A's latents; U = context_steps + horizon - 1
    latents_cycled: np.ndarray  # (U, L) those the cycled rollout on A is given
    on_b: np.ndarray  # (P, N, E) B's rollout from its context with A's latents
    cycled: np.ndarray  # (P, N, E) A's rollout with the cycled latents
    original: np.ndarray  # (P, N, E) A's rollout with its own latents


class Model:
    """A trained world model (and optionally its decoder) ready for videos; see the module docstring."""

    def __init__(self, weights: export.Weights, device=None, source: str = ""):
        self.device = device or jax.devices()[0]
        self.config, self.step, self.source = weights.config, weights.step, source
        self.system = systems.make(weights.config)
        self.params = jax.device_put(weights.params, self.device)
        self.decoder = None
        if weights.decoder is not None:
            decoder_system = systems.make(weights.decoder.config)
            params = {
                "encoder": self.params["encoder"],
                **jax.device_put(weights.decoder.params, self.device),
            }
            self.decoder = systems.Model(decoder_system, params)
            self._decode = jax.jit(lambda p, states: to_uint8(decoder_system.decode(p, states)))
        encoder = self.system.config.encoder
        self.image_hw = config_lib.image_hw(encoder)
        self.frames_per_state = config_lib.frames_per_state(encoder)
        self.clip_frames, self.fps, _ = sources.clip_shape(self.config.data)
        self.clip_states = max(2, self.clip_frames // self.frames_per_state)
        system = self.system
        self._latents = jax.jit(lambda p, v: system.regularized_latents(p, system.encode(p, v))[::3])
        self._encode = jax.jit(system.encode)
        self._predict = jax.jit(lambda p, v, z: system.predict(p, system.encode(p, v)[:, :-1], z))
        self._rollout = jax.jit(system.rollout, static_argnums=3)
        self._statistics = jax.jit(jax.vmap(self._clip_statistics, in_axes=(None, 0)))

    def __repr__(self):
        return f"lawm.api.Model({self.source!r}, step={self.step}, decoder={self.decoder is not None})"

    @property
    def latent_dim(self) -> int:
        return self.system.config.latent_dim

    # -- frames -------------------------------------------------------------------------------------------
    def prepare(self, video_FHWC) -> np.ndarray:
        """uint8 frames at the model's size, cut to whole states (at least two)."""
        video = np.asarray(video_FHWC)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"a video is uint8 frames (F, H, W, 3), got {video.dtype} {video.shape}")
        k = self.frames_per_state
        if len(video) < 2 * k:
            raise ValueError(
                f"a video of {len(video)} frames is shorter than two states "
                f"({2 * k} frames at {self.fps:g} fps)"
            )
        video = video[: len(video) // k * k]
        if video.shape[1:3] != self.image_hw:
            video = resize_and_crop(video, self.image_hw)
        return video

    def _windows(self, video_FHWC):
        """(starts, window length in states, states in the video) of the windows covering a video."""
        states = len(video_FHWC) // self.frames_per_state
        length = min(self.clip_states, states)
        starts = list(range(0, states - length + 1, length - 1))
        if starts[-1] + length < states:
            starts.append(states - length)
        return starts, length, states

    def _run(self, fn, count: int, take):
        """fn(params, *take(indices)) over items 0..count-1 in chunks of CHUNK, a short chunk padded (by
        repeating its last item) to a power of two; outputs stacked over items as host arrays."""
        outputs = []
        for first in range(0, count, CHUNK):
            n = min(CHUNK, count - first)
            indices = list(range(first, first + n)) + [first + n - 1] * (_bucket(n) - n)
            out = fn(self.params, *take(indices))
            outputs.append(jax.tree.map(lambda x, n=n: np.asarray(x)[:n], out))
        return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)

    def _run_windows(self, fn, video_FHWC, starts, length, latents_UL=None):
        """fn(params, windows (B, length k, H, W, 3)[, their latents (B, length - 1, L)]) over all windows."""
        k = self.frames_per_state

        def take(indices):
            windows = [np.stack([video_FHWC[starts[i] * k : (starts[i] + length) * k] for i in indices])]
            if latents_UL is not None:
                windows.append(np.stack([latents_UL[starts[i] : starts[i] + length - 1] for i in indices]))
            return windows

        return self._run(fn, len(starts), take)

    # -- the model's outputs --------------------------------------------------------------------------------
    def encode(self, video_FHWC) -> np.ndarray:
        """The video's states (S, N, E), each as the first window holding it computes it."""
        video = self.prepare(video_FHWC)
        starts, length, states = self._windows(video)
        window, local = _owners(starts, length, states)
        return self._run_windows(self._encode, video, starts, length)[window, local]

    def latent_actions(self, video_FHWC) -> np.ndarray:
        """The latent action of each pair of consecutive states: (S - 1, L), evaluation mode."""
        return self.latents_and_raw(video_FHWC)[0]

    def latents_and_raw(self, video_FHWC) -> tuple[np.ndarray, np.ndarray]:
        """(latents (S - 1, L), the IDM's raw outputs (S - 1, R) before the regularizer)."""
        video = self.prepare(video_FHWC)
        starts, length, states = self._windows(video)
        window, local = _owners(starts, length - 1, states - 1)
        z, raw = self._run_windows(self._latents, video, starts, length)
        return z[window, local], raw[window, local]

    def clip_latents(self, clips_BFHWC) -> tuple[np.ndarray, np.ndarray]:
        """Latents of whole clips, each encoded alone: (B, T - 1, L), and the raw outputs (B, T - 1, R)."""
        clips = [self.prepare(clip) for clip in clips_BFHWC]
        return self._run(self._latents, len(clips), lambda indices: [np.stack([clips[i] for i in indices])])

    def latent_statistics(self, raw_BUR) -> dict[str, np.ndarray]:
        """The regularizer's statistics of each clip's latents, from the IDM's raw outputs (B, U, R):
        {name: (B,)}, what the trainer logs as latent/<name>, over one clip's U latents; plus "code"
        (B, U), each latent's codebook entry, for a regularizer with a codebook (discrete)."""
        return jax.tree.map(np.asarray, self._statistics(self.params, np.asarray(raw_BUR)))

    def statistic_names(self) -> list[str]:
        """The names `latent_statistics` gives (from shapes only: nothing is computed)."""
        raw = jax.ShapeDtypeStruct(
            (1, 2, self.latent_dim * self.system.regularizer.raw_dim_factor), jnp.float32
        )
        return sorted(jax.eval_shape(self._statistics, self.params, raw))

    def _clip_statistics(self, params, raw_UR):
        system = self.system
        z, _, metrics = system.regularizer.apply(
            raw_UR, params["regularizer"], rng=None, train=False, **system.regularizer_kwargs
        )
        out = {name: value for name, value in metrics.items() if name != "code_counts"}
        if "codebook" in params["regularizer"]:  # z is its code's entry: the nearest one is that code
            codebook_VL = params["regularizer"]["codebook"].astype(jnp.float32)
            z_UL = z.astype(jnp.float32)
            distance_UV = jnp.sum(codebook_VL**2, -1) - 2 * jnp.dot(z_UL, codebook_VL.T, precision="highest")
            out["code"] = jnp.argmin(distance_UV, axis=-1).astype(jnp.int32)
        return out

    def predict(self, video_FHWC, latents_UL=None) -> np.ndarray:
        """Teacher-forced predictions of states 1..S-1 (S - 1, N, E): the one of s_{j+1} from the states up
        to s_j and their latents (default: the video's own, `latent_actions`)."""
        video = self.prepare(video_FHWC)
        starts, length, states = self._windows(video)
        latents = self.latent_actions(video) if latents_UL is None else np.asarray(latents_UL, np.float32)
        if latents.shape != (states - 1, self.latent_dim):
            raise ValueError(
                f"predict: a video of {states} states takes {states - 1} latents of {self.latent_dim} dims, "
                f"got shape {latents.shape}"
            )
        window, local = _owners(starts, length - 1, states - 1)
        return self._run_windows(self._predict, video, starts, length, latents)[window, local]

    def rollout(self, context_TNE, latents_UL, steps: int) -> np.ndarray:
        """`steps` states predicted after the context states (P, N, E), each fed back as the next input;
        latents: one per context state, then one per predicted step but the last (U = T + steps - 1).
        A leading batch dim on both is kept."""
        context, latents = np.asarray(context_TNE), np.asarray(latents_UL, np.float32)
        single = context.ndim == 3
        if single:
            context, latents = context[None], latents[None]
        out = np.asarray(self._rollout(self.params, context, latents, int(steps)))
        return out[0] if single else out

    def transfer(self, video_a, video_b, *, horizon=None, context_steps=None, num_frames=None) -> Transfer:
        """A's latents applied to B (B rolled out from its context with them), re-inferred on that rollout
        and applied back to A, exactly as the transfer evaluator does (lawm.evals.transfer) on the pair.

        Both videos are cut to one clip of `num_frames` frames (default: the training clip's, or the
        shorter video's length); horizon defaults to min(4, states - 1), the context to the rest."""
        a, b = self.prepare(video_a), self.prepare(video_b)
        k = self.frames_per_state
        frames = min(len(a), len(b), num_frames or self.clip_states * k) // k * k
        states = frames // k
        horizon = min(4, states - 1) if horizon is None else horizon
        context = states - horizon if context_steps is None else context_steps
        if horizon < 1 or context < 1 or context + horizon > states:
            raise ValueError(
                f"transfer: context_steps ({context}) + horizon ({horizon}) must fit the clip's {states} "
                "states, each at least 1"
            )
        fn = transfer.transfer_fn(self.system, context, horizon)
        errors, rollouts, states_a, latents = fn(self.params, np.stack([a[:frames], b[:frames]]))
        row = lambda x: np.asarray(x[0])  # noqa: E731  clip 0 is A, its partner (clip 1) B
        states_a = np.asarray(states_a)
        target = states_a[0, context : context + horizon]
        per_step = lambda rolled: np.abs(row(rolled) - target).mean(axis=(-2, -1))  # noqa: E731
        return Transfer(
            ratio=common.ratio(float(errors["cycled"][0]), float(errors["original"][0])),
            error_original=per_step(rollouts["idm"]),
            error_cycled=per_step(rollouts["cycled"]),
            context_steps=context,
            horizon=horizon,
            video_a=a[:frames],
            video_b=b[:frames],
            states_a=states_a[0],
            states_b=states_a[1],
            latents_a=row(latents["A"]),
            latents_cycled=row(latents["cycled"]),
            on_b=row(rollouts["transfer_on_B"]),
            cycled=row(rollouts["cycled"]),
            original=row(rollouts["idm"]),
        )

    def decode(self, states_TNE) -> np.ndarray:
        """States (T, N, E) -> uint8 frames (T k, H, W, 3) through the attached decoder (frame-causal:
        give it the states from the first one on). A leading batch dim is kept."""
        if self.decoder is None:
            raise ValueError("decode needs a decoder: lawm.load(path, decoder=DECODER_RUN_OR_EXPORT)")
        states = np.asarray(states_TNE)
        single = states.ndim == 3
        frames = np.asarray(self._decode(self.decoder.params, states[None] if single else states))
        return frames[0] if single else frames


def _bucket(n: int) -> int:
    """The batch a chunk of n windows is padded to: the next power of two (at most CHUNK)."""
    return min(CHUNK, 1 << (n - 1).bit_length())


def _owners(starts, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """For items 0..count-1 (states, or pairs of states) and windows holding `size` of them from each
    start: (the first window holding each item, its index there)."""
    owner = np.full(count, -1)
    for w, start in enumerate(starts):
        items = np.arange(start, min(start + size, count))
        owner[items[owner[items] < 0]] = w
    return owner, np.arange(count) - np.asarray(starts)[owner]


def resize_and_crop(video_FHWC, hw) -> np.ndarray:
    """Frames resized to cover (h, w) (bilinear, antialiased when shrinking) and centre-cropped to it."""
    from PIL import Image

    F, H, W, _ = video_FHWC.shape
    h, w = hw
    scale = max(h / H, w / W)
    new_h, new_w = max(h, round(H * scale)), max(w, round(W * scale))
    top, left = (new_h - h) // 2, (new_w - w) // 2
    out = np.empty((F, h, w, 3), np.uint8)
    for i, frame in enumerate(video_FHWC):
        image = Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BILINEAR)
        out[i] = np.asarray(image)[top : top + h, left : left + w]
    return out


def read_video(path, model: Model, *, start_s: float = 0.0, num_frames: int | None = None) -> np.ndarray:
    """A video file's frames at the model's frame rate from `start_s` (all that fit, or `num_frames`),
    short side resized to the model's and centre-cropped when the model's frames are square (else at their
    own size: `Model.prepare` resizes). Local or gs:// paths; a bad file raises VideoError (one line)."""
    from data_pipelines import video
    from data_pipelines.sources import video_folder

    path = str(path)
    with video_folder.open_video(path) as opened:
        info = video.probe(opened, where=path)
    last_s = info.duration_s - 1.0 / info.fps if info.fps > 0 else info.duration_s
    available = int(np.floor((last_s - start_s) * model.fps + 1e-6)) + 1
    count = available if num_frames is None else min(num_frames, available)
    if count < 1:
        raise video.VideoError(
            f"{path}: no frame after {start_s:g} s (the video lasts {info.duration_s:.2f} s)"
        )
    h, w = model.image_hw
    with video_folder.open_video(path) as opened:
        return video.decode_clip(
            opened, num_frames=count, fps=model.fps, start_s=start_s, size=h if h == w else None, where=path
        )
