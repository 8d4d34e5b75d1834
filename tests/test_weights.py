"""Released V-JEPA 2 weights: parity with transformers' VJEPA2Model, both file layouts, bad files."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import VJEPA2Config, VJEPA2Model

from lawm import train, weights
from lawm.models.encoder import VideoEncoder
from lawm.systems.world_model import WorldModelSystem as System
from tests.helpers import tiny_train_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (hidden, layers, heads, crop, patch, tubelet, frames). The reference derives RoPE positions from a square
# crop_size grid, so it cannot run a non-square token grid correctly; ours takes positions from the actual
# grid (tested in test_models with a 2 x 3 grid).
CONFIGS = {
    "head_dim_20_not_divisible_by_3": (40, 2, 2, 32, 16, 2, 4),
    "eight_frames_tubelet_2": (48, 2, 4, 32, 16, 2, 8),
    "sixteen_frames_patch_8_mlp_3": (36, 3, 3, 24, 8, 2, 16),
}


def reference(name, seed=0):
    hidden, layers, heads, crop, patch, tubelet, frames = CONFIGS[name]
    torch.manual_seed(seed)
    config = VJEPA2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        crop_size=crop,
        patch_size=patch,
        tubelet_size=tubelet,
        frames_per_clip=frames,
        mlp_ratio=3.0 if "mlp_3" in name else 4.0,
        pred_hidden_size=16,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        pred_num_mask_tokens=2,
    )
    model = VJEPA2Model(config).eval()
    with torch.no_grad():  # random init has zero biases and unit norms: perturb so every tensor matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    video = np.random.default_rng(seed).normal(size=(2, frames, crop, crop, 3)).astype(np.float32)
    with torch.no_grad():
        expected = model(pixel_values_videos=torch.from_numpy(video).permute(0, 1, 4, 2, 3)).last_hidden_state
    return model, video, expected.numpy()


def ours(spec, params, video):
    """Our encoder (bidirectional, as the release) on the loaded params: tokens (B, T*N, D)."""
    graphdef = nnx.split(
        nnx.eval_shape(lambda: VideoEncoder(**spec.build_kwargs(), causal="none", rngs=nnx.Rngs(0)))
    )[0]
    states = jax.jit(lambda p, v: nnx.merge(graphdef, p)(v))(params, video)
    return np.asarray(states.reshape(states.shape[0], -1, states.shape[-1]))


def write_original_layout(model, path, entry="target_encoder"):
    """The reference weights in facebookresearch/vjepa2's layout: fused qkv, module.backbone. prefixes."""
    state = {}
    for key, value in model.state_dict().items():
        if not key.startswith("encoder."):
            continue
        name = key.removeprefix("encoder.")
        name = name.replace("embeddings.patch_embeddings.proj.", "patch_embed.proj.").replace(
            "layernorm.", "norm."
        )
        name = name.replace("layer.", "blocks.", 1).replace(".attention.", ".attn.")
        state["module.backbone." + name] = value.clone()
    for key in [k for k in state if ".attn.query." in k]:
        parts = [state.pop(key.replace(".query.", f".{p}.")) for p in ("query", "key", "value")]
        state[key.replace(".query.", ".qkv.")] = torch.cat(parts, dim=0)
    torch.save({entry: state, "epoch": 10}, path)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parity_with_transformers_through_safetensors_and_pt(tmp_path, name):
    model, video, expected = reference(name)
    model.save_pretrained(tmp_path / "hf")
    spec, params = weights.load(tmp_path / "hf")
    hidden, layers, heads, crop, patch, tubelet, frames = CONFIGS[name]
    assert (spec.width, spec.depth, spec.num_heads, spec.patch_size) == (hidden, layers, heads, patch)
    error = np.abs(ours(spec, params, video) - expected).max()
    assert error <= 1e-4, error

    write_original_layout(model, tmp_path / "vit.pt")
    with pytest.raises(weights.WeightsError, match="number of heads is unknown: pass num_heads"):
        weights.load(tmp_path / "vit.pt")  # tiny widths are not released sizes
    pt_spec, pt_params = weights.load(tmp_path / "vit.pt", num_heads=heads)
    assert pt_spec == dataclasses.replace(spec, image_size=256, frames_per_clip=64)  # .pt carries no config
    assert np.abs(ours(pt_spec, pt_params, video) - expected).max() <= 1e-4


@pytest.fixture
def hf_folder(tmp_path):
    model, video, expected = reference("eight_frames_tubelet_2")
    model.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def test_truncated_safetensors_fails_with_one_line(hf_folder):
    file = hf_folder / "model.safetensors"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(
        weights.WeightsError, match=r"model.safetensors: not a readable safetensors file"
    ) as e:
        weights.load(hf_folder)
    assert "\n" not in str(e.value)


def test_renamed_key_fails_naming_it(tmp_path):
    model, _, _ = reference("eight_frames_tubelet_2")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["encoder.layer.1.attention.q.weight"] = state.pop("encoder.layer.1.attention.query.weight")
    write_original = tmp_path / "renamed.pt"
    torch.save(
        {"encoder": {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}},
        write_original,
    )
    with pytest.raises(weights.WeightsError) as e:
        weights.load(write_original, num_heads=4)
    message = str(e.value)
    assert "missing key encoder.layer.1.attention.query.weight" in message
    assert "unexpected: encoder.layer.1.attention.q.weight" in message and "\n" not in message


def test_config_and_weights_of_different_sizes_fail_naming_the_key(hf_folder):
    config = json.loads((hf_folder / "config.json").read_text())
    config["hidden_size"], config["num_attention_heads"] = 64, 4  # the weights are 48 wide
    (hf_folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        weights.WeightsError,
        match=r"encoder.embeddings.patch_embeddings.proj.weight has shape "
        r"\(48, 3, 2, 16, 16\), which does not fit",
    ) as e:
        weights.load(hf_folder)
    assert "\n" not in str(e.value)


def test_pt_without_an_encoder_entry_and_non_checkpoints_fail(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(weights.WeightsError, match="no encoder entry"):
        weights.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(weights.WeightsError, match="not a loadable weights-only PyTorch checkpoint"):
        weights.load(tmp_path / "junk.pt")
    with pytest.raises(weights.WeightsError, match="neither a Hugging Face V-JEPA 2 folder"):
        weights.load(tmp_path)


def test_converted_folder_round_trips(tmp_path, hf_folder):
    spec, params = weights.load(hf_folder)
    weights.save_converted(spec, params, tmp_path / "converted")
    assert weights.read_spec(tmp_path / "converted") == spec
    spec2, params2 = weights.load(tmp_path / "converted")
    assert spec2 == spec
    jax.tree.map(np.testing.assert_array_equal, params2, params)


def test_convert_command_and_training_on_released_weights(tmp_path):
    model, video, expected = reference("eight_frames_tubelet_2")
    write_original_layout(model, tmp_path / "vit.pt")
    command = [sys.executable, "-m", "experiments.convert_vjepa2", "--input", str(tmp_path / "vit.pt")]
    result = subprocess.run(
        [*command, "--output", str(tmp_path / "enc"), "--num_heads", "4"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    bad = subprocess.run(
        [*command, "--output", str(tmp_path / "bad")], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "error: " in bad.stderr and "pass num_heads" in bad.stderr

    config = tiny_train_config(total_steps=2)
    config.model.encoder.checkpoint = str(tmp_path / "enc")  # its sizes (48 wide, 2 layers) win
    system = System(config.model)
    assert (system.config.encoder.width, system.config.encoder.depth) == (48, 2)
    frozen = system.frozen_encoder(jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(frozen), weights.load(tmp_path / "enc")[1])
    result = train.train_and_evaluate(config, tmp_path / "run")
    assert [h["step"] for h in result["history"]] == [1, 2] and np.isfinite(
        result["eval"]["error_own_latents"]
    )

    config.model.encoder.checkpoint = str(tmp_path / "nowhere")
    with pytest.raises(train.ConfigError, match="nowhere: neither a Hugging Face V-JEPA 2 folder"):
        train.train_and_evaluate(config, tmp_path / "run2")
