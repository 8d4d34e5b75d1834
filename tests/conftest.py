"""Test-session setup: 8 simulated CPU devices, so sharding is exercised without accelerators.

The flag must be set before jax initialises its backend; conftest.py is imported before any test module.
Single-device tests are unaffected: computations stay on the default device unless sharded.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()
