"""Every shipped training config builds and validates, and documents how to run it."""

import importlib

import pytest

from experiments.configs import lawm_yt1b, synthetic_eval
from lawm import train
from lawm.evals import runner

CONFIGS = (
    [("quickstart", None)]
    + [("lawm_yt1b", preset) for preset in lawm_yt1b.PRESETS]
    + [("synthetic_eval", regularizer) for regularizer in synthetic_eval.REGULARIZERS]
    + [("decoder", "synthetic_eval"), ("decoder", "quickstart")]
)


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_config_validates_and_documents_itself(name, arg):
    module = importlib.import_module(f"experiments.configs.{name}")
    config = module.get_config(arg)
    if name == "lawm_yt1b":  # the data paths are the user's; without them the config fails, naming them
        with pytest.raises(train.ConfigError, match=r"data.yt_temporal.records.train is not set"):
            train.validate_config(config, 8)
        config.data.yt_temporal.records.update(train="/data/train", eval="/data/eval")
    train.validate_config(config, 8)
    runner.validate(config)  # its evaluators exist
    for heading in ("COMMAND:", "RUNTIME:", "EXPECTED:"):
        assert heading in module.__doc__


def test_paper_recipe_numbers():
    config = lawm_yt1b.get_config("sparse-high")
    assert (config.batch_size, config.total_steps, config.data.world.num_frames) == (1024, 30_000, 16)
    assert (config.optim.muon_lr, config.optim.adamw_lr, config.optim.weight_decay) == (0.02, 6.25e-4, 0.04)
    assert config.optim.warmup_fraction == 0.1 and config.model.regularizer.l1 == 0.01
    assert lawm_yt1b.get_config("discrete-low").model.regularizer.reset_every == 2_500_000 // (1024 * 7)
    with pytest.raises(ValueError, match="preset must be one of"):
        lawm_yt1b.get_config("sparse-extreme")
