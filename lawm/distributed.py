"""Multi-host start-up: one program per host (TPU pod worker, SLURM task), joined by jax.distributed.

Call `initialize` before anything touches a JAX backend. Under a TPU pod or SLURM, JAX discovers the
coordinator, the process count and this process's id from the environment; elsewhere pass them
explicitly. On CPU the processes exchange collectives through gloo (how tests run two processes on
loopback).
"""

from __future__ import annotations

import os

import jax


def launched_by_cluster() -> bool:
    """Whether a multi-process launcher started us: JAX's own detection (TPU VM metadata, SLURM, Open MPI,
    ...), which jax.distributed.initialize() then uses to find the coordinator and this process's id."""
    try:
        from jax._src import clusters  # private, but it is exactly the detection initialize() runs

        return any(
            not env.opt_in_only_method and env.is_env_present() for env in clusters.ClusterEnv._cluster_types
        )
    except (ImportError, AttributeError):  # moved in a newer jax: fall back to the common environments
        if "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
            return True
        return (
            "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
            or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
        )


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Joins the multi-process runtime when launched that way (or told to); returns whether it did."""
    if coordinator is None and not launched_by_cluster():
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only used by CPU backends
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    return True
