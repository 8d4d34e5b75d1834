"""lawm: latent action world models in JAX (Garrido et al. 2026)."""
