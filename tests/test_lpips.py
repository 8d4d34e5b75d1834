"""LPIPS in JAX: parity with a torch LPIPS v0.1 written out here, the three file layouts, bad files, grads."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from torch import nn

from lawm.models import lpips

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # the five ReLUs of torchvision's AlexNet.features


class AlexNet(nn.Module):
    """torchvision's AlexNet layer indices (so its state dict keys), with a token classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(8, 4))  # ignored by lpips.load


class NetLinLayer(nn.Module):
    """The lpips package's linear layer: keys `model.1.weight`, shape (1, C, 1, 1)."""

    def __init__(self, channels):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, stride=1, padding=0, bias=False))


class Lins(nn.Module):
    def __init__(self):
        super().__init__()
        for k, channels in enumerate(CHANNELS):
            setattr(self, f"lin{k}", NetLinLayer(channels))
            with torch.no_grad():  # the released lin weights are non-negative
                getattr(self, f"lin{k}").model[1].weight.copy_(torch.rand(1, channels, 1, 1))


def reference(alexnet, lins, x_BHWC, y_BHWC):
    """LPIPS v0.1 as the lpips package computes it, in float64 torch; images channels last -> NCHW."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64)[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64)[None, :, None, None]

    def taps(x_BHWC):
        h = (torch.from_numpy(np.asarray(x_BHWC)).double().permute(0, 3, 1, 2) - shift) / scale
        out = []
        for index, layer in enumerate(alexnet.features):
            h = layer(h)
            if index in TAPS:
                out.append(h)
        return out

    def normalize_tensor(x, eps=1e-10):
        return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)

    alexnet, lins = alexnet.double().eval(), lins.double().eval()
    with torch.no_grad():
        total = 0
        for k, (a, b) in enumerate(zip(taps(x_BHWC), taps(y_BHWC), strict=True)):
            diff = (normalize_tensor(a) - normalize_tensor(b)) ** 2
            total = total + getattr(lins, f"lin{k}").model(diff).mean(dim=(2, 3), keepdim=True)
    alexnet.float(), lins.float()
    return total.reshape(-1).numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Random weights in every layout: the pair of .pth, a combined .pth, a combined .safetensors."""
    torch.manual_seed(0)
    alexnet, lins = AlexNet(), Lins()
    folder = tmp_path_factory.mktemp("lpips")
    paths = {
        "alexnet": str(folder / "alexnet-owt-7be5be79.pth"),
        "lins": str(folder / "alex.pth"),
        "combined_pth": str(folder / "combined.pth"),
    }
    torch.save(alexnet.state_dict(), paths["alexnet"])
    torch.save(lins.state_dict(), paths["lins"])
    torch.save({**alexnet.state_dict(), **lins.state_dict()}, paths["combined_pth"])
    paths["combined_safetensors"] = str(folder / "combined.safetensors")
    lpips.save_combined(lpips.load(f"{paths['alexnet']},{paths['lins']}"), paths["combined_safetensors"])
    return alexnet, lins, paths


def images(seed, shape):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(2)]


@pytest.mark.parametrize("shape", [(3, 64, 64, 3), (2, 48, 80, 3)])
def test_matches_torch_reference(files, shape):
    alexnet, lins, paths = files
    params = lpips.load(f"{paths['alexnet']},{paths['lins']}")
    x, y = images(1, shape)
    expected = reference(alexnet, lins, x, y)
    got = np.asarray(jax.jit(lpips.distance)(params, x, y))
    assert got.shape == (shape[0],) and got.dtype == np.float32
    assert np.all(expected > 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    print(f"{shape}: lpips {expected}, max abs diff {np.abs(got - expected).max():.3e}")


def test_zero_for_identical_positive_for_different(files):
    params = lpips.load(files[2]["combined_safetensors"])
    x, y = images(2, (2, 64, 64, 3))
    np.testing.assert_array_equal(np.asarray(lpips.distance(params, x, x)), 0.0)
    different = np.asarray(lpips.distance(params, x, y))
    assert np.all(different > 0)
    close = np.asarray(lpips.distance(params, x, x + 0.01 * (y - x)))
    assert np.all((close > 0) & (close < different))


def test_file_layouts_agree(files):
    paths = files[2]
    x, y = images(3, (2, 64, 64, 3))
    layouts = {
        "pair": f"{paths['alexnet']}, {paths['lins']}",
        "list": [paths["alexnet"], paths["lins"]],
        "combined_safetensors": paths["combined_safetensors"],
        "combined_pth": paths["combined_pth"],
    }
    results = {name: np.asarray(lpips.distance(lpips.load(arg), x, y)) for name, arg in layouts.items()}
    for name, result in results.items():
        np.testing.assert_array_equal(result, results["pair"], err_msg=name)


def test_bad_files_name_file_and_key(files, tmp_path):
    alexnet, lins, paths = files
    state = {**alexnet.state_dict(), **lins.state_dict()}

    missing = {k: v for k, v in state.items() if k != "features.3.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth.*features\.3\.bias") as error:
        lpips.load(str(tmp_path / "missing.pth"))
    assert "\n" not in str(error.value)

    wrong = {k: v.numpy() for k, v in state.items()}
    wrong["lin2.model.1.weight"] = np.zeros((1, 256, 1, 1), np.float32)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ValueError, match=r"wrong\.safetensors.*lin2\.model\.1\.weight.*\(1, 384, 1, 1\)"):
        lpips.load(str(tmp_path / "wrong.safetensors"))

    with pytest.raises(
        ValueError, match=r"alexnet-owt-7be5be79\.pth: missing key lin0\.model\.1\.weight.*alex\.pth"
    ):
        lpips.load(paths["alexnet"])  # the lins are missing: the pair is needed
    with pytest.raises(ValueError, match=r"nope\.pth: no such file"):
        lpips.load(str(tmp_path / "nope.pth"))
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"garbage\.safetensors: not a readable"):
        lpips.load(str(tmp_path / "garbage.safetensors"))


class Payload:
    """Stands for arbitrary pickled code: a weights-only load must refuse it."""


def test_pickled_code_is_refused(tmp_path):
    torch.save({"features.0.weight": Payload()}, tmp_path / "pickle.pth")
    with pytest.raises(ValueError, match=r"pickle\.pth: not a loadable weights-only"):
        lpips.load(str(tmp_path / "pickle.pth"))


def test_bad_images():
    params = None  # the shapes are checked before any weight is used
    with pytest.raises(ValueError, match="at least 32 px"):
        lpips.distance(params, np.zeros((1, 31, 64, 3)), np.zeros((1, 31, 64, 3)))
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        lpips.distance(params, np.zeros((1, 64, 64, 3)), np.zeros((1, 64, 64, 1)))


def test_gradient_is_finite(files):
    params = lpips.load(files[2]["combined_safetensors"])
    x, y = images(4, (2, 48, 80, 3))
    loss = lambda x: jnp.mean(lpips.distance(params, x, y))
    grad = jax.jit(jax.grad(loss))(jnp.asarray(x))
    assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0
    # At x == y (every feature difference zero) and at an all-zero feature map the gradient stays finite.
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda x: jnp.mean(lpips.distance(params, x, x)))(x))))
    dark = jnp.full((1, 32, 32, 3), -1.0)  # with a huge negative bias every ReLU is zero
    silent = dict(params, conv=[dict(c, b_O=c["b_O"] - 1e4) for c in params["conv"]])
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda x: lpips.distance(silent, x, x * 0.5).sum())(dark))))
    # Through the weights too (it is a loss that may sit inside a training step).
    grads = jax.grad(lambda p: jnp.mean(lpips.distance(p, x, y)))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_imports_and_reads_safetensors_without_torch(files):
    paths = files[2]
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from lawm.models import lpips\n"
        f"params = lpips.load({paths['combined_safetensors']!r})\n"
        "assert len(params['conv']) == 5 and params['lin'][4].shape == (256,)\n"
        "try:\n"
        f"    lpips.load({paths['combined_pth']!r})\n"
        "except ValueError as error:\n"
        "    assert 'needs torch' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}
    )
