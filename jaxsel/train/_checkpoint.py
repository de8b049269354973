"""Orbax checkpoints of a training run: one directory per completed epoch.

A checkpoint holds the arrays (``state`` item: parameters, BN state, optimizer state, best
parameters, schedule, standardizer) and a JSON ``meta`` item (completed epochs, config,
neuron ids, data fingerprint, seed, history). Saving is synchronous, so a checkpoint on disk
is always complete; orbax writes to a temporary directory and renames it, so a run killed
while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import orbax.checkpoint as ocp

FORMAT = 1
_log = logging.getLogger(__name__)


def checkpoint_dir(out_dir: str | Path) -> Path:
    """The folder holding a run's checkpoints: ``out_dir/checkpoints`` (absolute)."""
    return Path(out_dir).absolute() / "checkpoints"


def _manager(out_dir, max_to_keep: int = 2) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(checkpoint_dir(out_dir), options=opts)


def latest_epoch(out_dir) -> int | None:
    """Completed epochs of the newest checkpoint in ``out_dir`` (None if there is none)."""
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return None
    with _manager(out_dir) as mgr:
        return mgr.latest_step()


def save_checkpoint(out_dir, epoch: int, tree: dict, meta: dict) -> Path:
    """Save arrays ``tree`` and JSON ``meta`` as the checkpoint after ``epoch`` epochs."""
    with _manager(out_dir) as mgr:
        mgr.save(
            int(epoch),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree),
                meta=ocp.args.JsonSave({"format": FORMAT, **meta}),
            ),
            force=True,
        )
        mgr.wait_until_finished()
    return checkpoint_dir(out_dir) / str(int(epoch))


def read_meta(out_dir, epoch: int | None = None) -> dict:
    """The JSON metadata of a checkpoint (default: the newest)."""
    with _manager(out_dir) as mgr:
        epoch = mgr.latest_step() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(out_dir)}")
        return dict(mgr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)


def restore_checkpoint(out_dir, like: dict, epoch: int | None = None) -> tuple[dict, dict]:
    """Restore ``(tree, meta)``; ``like`` is a pytree with the expected structure/shapes."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with _manager(out_dir) as mgr:
        epoch = mgr.latest_step() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(out_dir)}")
        r = mgr.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
    return r.state, dict(r.meta)


__all__ = ["checkpoint_dir", "latest_epoch", "read_meta", "restore_checkpoint", "save_checkpoint"]
