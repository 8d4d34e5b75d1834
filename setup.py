"""lawm: latent action world models trained on in-the-wild video, in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="lawm",
    version="0.1.0",
    description="Latent action world models in the wild (Garrido et al. 2026) in JAX/Flax, at TPU-pod scale.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(
        include=["lawm", "lawm.*", "data_pipelines", "data_pipelines.*", "experiments", "experiments.*"]
    ),
    install_requires=[
        "jax",
        "flax>=0.12",
        "optax",  # includes optax.contrib.muon
        "orbax-checkpoint",
        "grain",
        "array-record",
        "ml-collections",
        "clu",
        "tensorflow-cpu",  # only for clu's metric writers and RLDS conversion; imported lazily
        "tensorboard",
        "tensorflow-datasets",  # RLDS (DROID, RECON) conversion only
        "safetensors",  # released V-JEPA 2 weights (Hugging Face layout)
        "av",  # PyAV: video decoding
        "msgpack",
        "einops",
        "numpy",
        "pillow",  # evaluation picture grids (PNG)
    ],
    extras_require={
        "test": ["pytest", "torch==2.13.0", "transformers", "ruff"],
    },
    entry_points={
        "console_scripts": [
            "lawm-train = experiments.train:run",
            "lawm-eval = experiments.eval:run",
            "lawm-plan = experiments.plan:run",
            "lawm-convert-vjepa2 = experiments.convert_vjepa2:run",
            "lawm-prepare = data_pipelines.tools.prepare:run",
        ]
    },
)
