"""Device mesh, parameter (FSDP) and batch shardings. Parallelism is data in the config, not code.

The mesh has axes ("data", "fsdp", "tensor"). Parameters and optimiser state are sharded over "fsdp"
along their largest divisible dimension (and, for 2-D matrices, over "tensor" along the other one);
the batch is split over data x fsdp. XLA's partitioner (GSPMD, `AxisType.Auto`) inserts the collectives,
so any mesh computes the same numbers; the mesh only changes speed and memory.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, ...]:
    """Axis sizes from a config like {"data": -1, "fsdp": 4, "tensor": 1}; -1 takes the remaining devices."""
    unknown = set(mesh_config) - set(AXES)
    if unknown:
        raise ValueError(f"mesh has unknown axes {sorted(unknown)} (valid: {', '.join(AXES)})")
    sizes = [int(mesh_config.get(axis, 1)) for axis in AXES]
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(
            f"mesh sizes {dict(zip(AXES, sizes, strict=True))} must be positive, with at most one -1"
        )
    known = math.prod(s for s in sizes if s != -1)
    if num_devices % known:
        raise ValueError(
            f"mesh {dict(zip(AXES, sizes, strict=True))} does not divide the {num_devices} devices"
        )
    sizes = [num_devices // known if s == -1 else s for s in sizes]
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"mesh {dict(zip(AXES, sizes, strict=True))} needs {math.prod(sizes)} devices, "
            f"there are {num_devices}"
        )
    return tuple(sizes)


def make_mesh(mesh_config, devices=None) -> jax.sharding.Mesh:
    """The ("data", "fsdp", "tensor") mesh over `devices` (default: all), with classic Auto axes."""
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(mesh_config, len(devices))
    # jax.make_mesh defaults to Explicit axes (sharding in types); we want GSPMD's automatic propagation.
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def data_parallel_size(mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def param_spec(shape, mesh) -> P:
    """FSDP over the largest dim divisible by the fsdp size; 2-D matrices split the other dim over tensor."""
    spec = [None] * len(shape)
    fsdp, tensor = mesh.shape["fsdp"], mesh.shape["tensor"]
    candidates = [d for d in np.argsort(shape)[::-1] if shape[d] % fsdp == 0] if fsdp > 1 else []
    if candidates:
        spec[candidates[0]] = "fsdp"
    if len(shape) == 2 and tensor > 1:
        other = 1 - candidates[0] if candidates else int(np.argmax(shape))
        if spec[other] is None and shape[other] % tensor == 0:
            spec[other] = "tensor"
    return P(*spec)


def param_shardings(tree, mesh):
    """NamedSharding per leaf of a tree of arrays or ShapeDtypeStructs (params or optimiser state)."""
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(x.shape, mesh)), tree)


def abstract_like(tree, shardings):
    """ShapeDtypeStructs of `tree` carrying `shardings`: a restore or ahead-of-time compile target."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def state_shardings(abstract_state, mesh):
    """A train state's shardings: FSDP for params and optimiser state; counters and the RNG replicated."""
    return {
        key: param_shardings(value, mesh)
        if key in ("params", "opt_state")
        else jax.tree.map(lambda _: replicated(mesh), value)
        for key, value in abstract_state.items()
    }


def batch_sharding(mesh) -> NamedSharding:
    """Leading (batch) dim over data x fsdp; everything else replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def sharded_init(init_fn, rng, mesh):
    """Runs `init_fn(rng)` under jit with FSDP out_shardings: parameters are born sharded, never gathered."""
    shardings = param_shardings(jax.eval_shape(init_fn, rng), mesh)
    return jax.jit(init_fn, out_shardings=shardings)(rng)
