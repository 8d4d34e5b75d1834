"""Test-session setup: 8 simulated CPU devices, so sharding is exercised without accelerators.

The flag must be set before jax initialises its backend; conftest.py is imported before any test module.
Single-device tests are unaffected: computations stay on the default device unless sharded.
"""

import os
import tempfile

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).strip()

# Many tests compile the same tiny train step (resume, crash and corruption runs, subprocesses): a
# persistent compilation cache shared by the session and its subprocesses compiles each program once.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"lawm-test-jax-cache-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
