"""lawm: latent action world models in JAX (Garrido et al. 2026, "Learning Latent Action World Models In
The Wild").

Layers, lowest first; a module imports only from its own layer or below (tests/test_architecture.py):

  parts      models/ (networks only), regularizers, optim, sharding, checkpoint, distributed, hardware,
             weights, config (model settings, resolved once), files (atomic writes), runs (a run's
             workdir), and data_pipelines/
  systems    systems/: what a task trains (world_model, decoder, controller), behind one protocol
  engine     step, train, flops; evals/ (evaluators + lawm-eval's runner); planning/ (CEM, protocols);
             a trained model put to use: api (on any video), export (its params: a workdir or a portable
             export folder), transfer_video (lawm-transfer), latent_table (lawm-latents), and this
             package's `load` (lawm.api.load, imported when called)
  entry      experiments/ (command-line programs and configs), never imported by the library

Dimension keys. Array names end in their shape (`states_BTNE`); one letter means one thing everywhere:

  B  clips in a batch (images, for 2-D networks)   F  video frames
  H  frame height (pixels)     W  frame width        C  channels (colours, or a feature map's)
  T  state steps of a clip     N  tokens per state step (an h x w grid of patches)
  E  state width (the encoder's output)              D  a network's width
  S  tokens in one attention sequence                M  attention heads      K  head dim
  L  latent-action dim         R  raw IDM output dim (a multiple of L)       A  real-action dim
  U  latents a rollout is given (context steps + predicted steps - 1)
  P  planned steps (the paper's horizon H)           Q  CEM samples (the paper's N)
  J  CEM elites (the paper's K)                      I  CEM iterations
  Z  latents pooled over a batch for statistics (B x (T-1))                  V  codebook entries
  G  values a decoder token is unpatchified into     X  position dims of a trajectory (2 or 3)
  Y  conditioning width (AdaLN-zero's per-step input: the world model's cond_dim)
"""


def load(path, step: int | None = None, decoder=None):
    """A trained world model, ready for any video (lawm.api.Model): `path` is a lawm-train workdir (its
    latest checkpoint, or `step`) or a lawm-export folder; `decoder` a decoder run (or an export holding
    one) for pictures. Imported when called, so `import lawm` stays light."""
    from lawm import api

    return api.load(path, step=step, decoder=decoder)
