"""Data parallelism: ``jax.jit`` over a ``Mesh`` with one ``data`` axis.

Batches are sharded along their leading axis over ``data``; parameters and optimizer state are
replicated. XLA inserts the gradient all-reduce, so model code never calls collectives. Multi-host
runs call ``jax.distributed.initialize`` first; every process then sees the global mesh and
contributes its own rows of each batch (``jgen.data.batching.to_global_array``).
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins a multi-process run; arguments left ``None`` are detected from the cluster (SLURM,
    TPU pods, Kubernetes). Must be called before any other JAX work in the process."""
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (0 means all devices, of all processes)."""
    devices = jax.devices()
    if num_devices < 0 or num_devices > len(devices):
        raise ValueError(
            f"parallel.num_devices must be in [0, {len(devices)}] (0 = all); got {num_devices}"
        )
    if num_devices and jax.process_count() > 1 and num_devices != len(devices):
        raise ValueError(
            f"parallel.num_devices must be 0 or {len(devices)} in a multi-process run; "
            f"got {num_devices}"
        )
    return Mesh(np.asarray(devices[: num_devices or len(devices)]), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``; the other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def check_divisible(name: str, batch_size: int, mesh: Mesh) -> None:
    """Raises unless ``batch_size`` splits evenly over the mesh's devices."""
    if batch_size % mesh.size:
        raise ValueError(
            f"{name} must be a multiple of the number of devices ({mesh.size}); got {batch_size}"
        )
