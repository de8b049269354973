"""The model axis of many-model training, sharded over devices and hosts with ``jax.sharding``.

Every per-model array (parameters, optimizer state, schedule, hyperparameters) has a leading
model axis; it is split over a one-axis :class:`jax.sharding.Mesh` named ``"models"``. Data
(images, responses) are replicated. The number of models is padded to a multiple of the
device count (padding models are frozen from the start and dropped at the end).

Multi-host: call :func:`initialize_distributed` in every process before anything touches JAX
devices; every process builds the same host arrays (initialisation is deterministic) and
:func:`shard_models` / :func:`replicate` turn them into global arrays (each process fills only
its own devices' shards); :func:`to_host` gathers results back to every process.

Example::

    mesh = model_mesh()                               # all devices of all processes
    tree = shard_models(host_tree, mesh)              # leading axis split over devices
    data = replicate(x_train, mesh)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MODEL_AXIS = "models"


def initialize_distributed(
    coordinator_address: str,
    num_processes: int,
    process_id: int,
    *,
    cpu_collectives: str | None = "gloo",
    **kwargs,
) -> None:
    """``jax.distributed.initialize`` (call first, in every process, before any JAX
    computation; note that importing ``jaxsel.train`` currently creates a JAX constant, so
    call ``jax.distributed.initialize`` directly before importing jaxsel.train, or import
    this module as the first jaxsel.train import and call it right away).

    Args:
      coordinator_address: ``"host:port"`` of process 0.
      num_processes, process_id: the job's size and this process's rank.
      cpu_collectives: CPU collectives implementation (``"gloo"``; None leaves it unset).
      **kwargs: passed to ``jax.distributed.initialize`` (e.g. ``local_device_ids``).
    """
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address, num_processes=num_processes, process_id=process_id, **kwargs
    )


def model_mesh(devices=None) -> Mesh:
    """A one-axis mesh ``("models",)`` over ``devices`` (default: ``jax.devices()``, i.e. every
    device of every process). Axis type Auto (jit + vmap of convolutions fails under the
    Explicit default of ``jax.make_mesh``)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(
        np.asarray(devices, dtype=object), (MODEL_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def padded_size(n_models: int, mesh: Mesh | None) -> int:
    """``n_models`` rounded up to a multiple of the mesh size (unchanged without a mesh)."""
    if mesh is None:
        return int(n_models)
    d = mesh.devices.size
    return -(-int(n_models) // d) * d


def model_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the ``models`` mesh axis."""
    return NamedSharding(mesh, P(MODEL_AXIS))


def _global(x, sharding):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def shard_models(tree, mesh: Mesh | None):
    """Host arrays with a leading model axis -> global arrays split along it (every process
    passes the full host arrays). Without a mesh: plain device arrays."""
    if mesh is None:
        return jax.tree.map(jax.numpy.asarray, tree)
    s = model_sharding(mesh)
    return jax.tree.map(lambda x: _global(x, s), tree)


def replicate(tree, mesh: Mesh | None):
    """Host arrays -> global arrays replicated on every device of the mesh."""
    if mesh is None:
        return jax.tree.map(jax.numpy.asarray, tree)
    s = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: _global(x, s), tree)


def to_host(tree):
    """Global (possibly multi-process) arrays -> full NumPy arrays in every process."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


def pad_models(tree, n_to: int):
    """Pad host arrays along the model axis to ``n_to`` by repeating model 0."""

    def pad(x):
        x = np.asarray(x)
        k = x.shape[0]
        if k == n_to:
            return x
        return np.concatenate([x, np.repeat(x[:1], n_to - k, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


__all__ = [
    "MODEL_AXIS",
    "initialize_distributed",
    "model_mesh",
    "model_sharding",
    "pad_models",
    "padded_size",
    "replicate",
    "shard_models",
    "to_host",
]
