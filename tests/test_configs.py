"""Every shipped training config builds and validates, and documents how to run it."""

import importlib
import pathlib
import re

import pytest

from experiments.configs import common, lawm_yt1b, quickstart, synthetic_eval
from lawm import step, train
from lawm.evals import runner

CONFIGS = (
    [("quickstart", None)]
    + [("lawm_yt1b", preset) for preset in lawm_yt1b.PRESETS]
    + [("synthetic_eval", regularizer) for regularizer in synthetic_eval.REGULARIZERS]
    + [("synthetic_eval", f"{regularizer}:agent") for regularizer in ("noisy", "deterministic")]
    + [("synthetic_eval", "noisy:rotated")]
    + [("decoder", "synthetic_eval"), ("decoder", "quickstart")]
    + [("videos", None), ("videos", "paper"), ("camera_pan", None)]
)
ONE_PER_FILE = [
    ("quickstart", None),
    ("lawm_yt1b", "noisy-high"),
    ("synthetic_eval", "noisy:agent"),
    ("decoder", "synthetic_eval"),
    ("videos", None),
    ("camera_pan", None),
]


@pytest.mark.parametrize("name,arg", CONFIGS)
def test_config_validates_and_documents_itself(name, arg):
    module = importlib.import_module(f"experiments.configs.{name}")
    config = module.get_config(arg)
    if name == "lawm_yt1b":  # the data paths are the user's; without them the config fails, naming them
        with pytest.raises(train.ConfigError, match=r"data.yt_temporal.records.train is not set"):
            train.validate_config(config, 8)
        config.data.yt_temporal.records.update(train="/data/train", eval="/data/eval")
    if name == "videos":
        with pytest.raises(train.ConfigError, match=r"data.videos.train is not set"):
            train.validate_config(config, 8)
        config.data.videos.update(train="/data/train", eval="/data/eval")
    train.validate_config(config, 8)
    runner.validate(config)  # its evaluators exist
    for heading in ("COMMAND:", "RUNTIME:", "EXPECTED:"):
        assert heading in module.__doc__


def test_paper_recipe_numbers():
    config = lawm_yt1b.get_config("sparse-high")
    assert (config.batch_size, config.total_steps, config.data.world.num_frames) == (1024, 30_000, 16)
    assert (config.optim.muon_lr, config.optim.adamw_lr, config.optim.weight_decay) == (0.02, 6.25e-4, 0.04)
    assert config.optim.warmup_fraction == 0.1 and config.model.regularizer.l1 == 0.01
    assert lawm_yt1b.get_config("noisy-paper").model.regularizer.to_dict() == dict(name="noisy", beta=5e-5)
    assert lawm_yt1b.get_config("sparse-paper").model.regularizer.to_dict() == dict(name="sparse", l1=0.01)
    with pytest.raises(ValueError, match="preset must be one of"):
        lawm_yt1b.get_config("sparse-extreme")


@pytest.mark.parametrize("causal,latents_per_clip", [("tubelet", 7), ("per_frame", 15)])
def test_paper_recipe_resets_codes_every_2_5m_latents_in_either_encoder_mode(causal, latents_per_clip):
    """The period is in latents; steps follow the run's batch size, frames and encoder mode (overrides)."""
    config = lawm_yt1b.get_config("discrete-low")
    assert config.model.regularizer.reset_every_latents == 2_500_000
    config.model.encoder.causal = causal
    assert step.latents_per_clip(config.model.encoder, 16) == latents_per_clip
    assert step.reset_period(config) == 2_500_000 // (1024 * latents_per_clip)  # 348 | 162
    config.batch_size = 512
    assert step.reset_period(config) == 2_500_000 // (512 * latents_per_clip)


def test_synthetic_eval_worlds_change_only_what_they_say():
    camera, agent = synthetic_eval.get_config("noisy"), synthetic_eval.get_config("noisy:agent")
    keys = set(camera.data.world) | set(agent.data.world)
    changed = {k for k in keys if camera.data.world.get(k) != agent.data.world.get(k)}
    assert changed == {"camera_pan", "sprite_radius", "agent_pattern_period", "entering_objects"}
    assert (agent.model.idm.pairing, agent.model.idm.depth, agent.model.regularizer.beta) == (
        "channels",
        2,
        1e-5,
    )
    assert camera.model.idm.pairing == "tokens" and camera.model.regularizer.beta == 1e-4
    rotated = synthetic_eval.get_config("noisy:rotated")
    changed = {k for k in keys if camera.data.world.get(k) != rotated.data.world.get(k)}
    assert changed | {"camera_rotation"} == {"camera_rotation", "max_speed"}
    assert rotated.data.world.camera_rotation and rotated.model == agent.model
    assert rotated.eval.reference_workdir.endswith("deterministic_rotated")
    with pytest.raises(ValueError, match="unknown world 'moon'"):
        synthetic_eval.get_config("noisy:moon")


CONFIG_FILES = sorted(pathlib.Path(common.__file__).parent.glob("[!_]*.py"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: path.stem)
def test_docstrings_are_short_and_cite_the_paper(path):
    """Measured results live in the README (one place); configs cite the paper by section."""
    doc = importlib.import_module(f"experiments.configs.{path.stem}").__doc__
    assert "PAPER.md" not in doc and "DESIGN.md" not in doc
    assert not re.search(r"20\d\d-\d\d-\d\d", doc), "a dated measurement: put it in the README"
    assert len(doc.splitlines()) <= 25


def test_every_training_config_names_its_task():
    assert common.base_config(10).task == "world_model"
    assert quickstart.get_config().task == synthetic_eval.get_config("noisy:agent").task == "world_model"
    for name, task in (("decoder", "decoder"), ("controller", "controller"), ("lawm_yt1b", "world_model")):
        assert importlib.import_module(f"experiments.configs.{name}").get_config().task == task


def test_synthetic_configs_share_the_cpu_model():
    camera = synthetic_eval.get_config("noisy")
    assert camera.model.world_model.residual and not quickstart.get_config().model.world_model.residual
    camera.model.world_model.residual = False
    for config in (quickstart.get_config(), camera):
        expected = common.cpu_model(common.base_config(10)).model
        expected.regularizer = config.model.regularizer
        assert config.model.to_dict() == expected.to_dict()


@pytest.mark.parametrize("name,arg", ONE_PER_FILE)
@pytest.mark.parametrize(
    "source,field", [("records", "paths"), ("video_folder", "videos"), ("camera_pan", "paths")]
)
def test_every_training_config_reads_any_file_source_named_on_the_command_line(name, arg, source, field):
    """--config.data.source=NAME plus that source's paths: a missing path fails before compute, naming the
    field; given, the config validates with the model's clip shape (unset fields follow data.world)."""
    config = importlib.import_module(f"experiments.configs.{name}").get_config(arg)
    config.data.source = source
    config.data[field].update(train="", eval="")
    with pytest.raises(train.ConfigError, match=rf"data.{field}.train is not set"):
        train.validate_config(config, 8)
    config.data[field].update(train="/data/train", eval="/data/eval")
    train.validate_config(config, 8)
