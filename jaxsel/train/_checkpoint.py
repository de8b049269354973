"""Orbax checkpoints of a training run: one directory per completed epoch.

A checkpoint holds the arrays (``state`` item: parameters, BN state, optimizer state, best
parameters, schedule, standardizer) and a JSON ``meta`` item (completed epochs, config,
neuron ids, data fingerprint, seed, history). Saving is synchronous, so a checkpoint on disk
is always complete; orbax writes to a temporary directory and renames it, so a run killed
while saving leaves the previous checkpoint intact (the next save removes that temporary
directory). A checkpoint that does not restore (damaged files) is moved to
``out_dir/broken-checkpoints`` and the one before it is used (:func:`restore_newest`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from jaxsel._errors import TrainingError

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


def all_epochs(out_dir) -> list[int]:
    """The epochs of every checkpoint in ``out_dir``, newest first."""
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return []
    return sorted(
        (int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit()), reverse=True
    )


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (orbax wraps the writer's errors), if any."""
    seen = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C that arrives while a checkpoint is written until it is complete (then
    raise KeyboardInterrupt), so orbax's own event loop and threads never see it."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    hit = []
    signal.signal(signal.SIGINT, lambda *_: hit.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hit:
        raise KeyboardInterrupt


def save_checkpoint(out_dir, epoch: int, tree: dict, meta: dict) -> Path:
    """Save arrays ``tree`` and JSON ``meta`` as the checkpoint after ``epoch`` epochs.

    Raises:
      TrainingError: the checkpoint cannot be written (full disk, no permission); the
        message names the errno and the folder; earlier checkpoints are kept.
    """
    target = checkpoint_dir(out_dir) / str(int(epoch))
    # saving is synchronous and one process writes a run: a temp folder here now is the
    # leftover of a save that was interrupted (Ctrl-C, kill -9)
    for tmp in checkpoint_dir(out_dir).glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _sigint_deferred(), _manager(out_dir) as mgr:
            mgr.save(
                int(epoch),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(tree),
                    meta=ocp.args.JsonSave({"format": FORMAT, **meta}),
                ),
                force=True,
            )
            mgr.wait_until_finished()
    except Exception as err:
        os_err = _os_error(err)
        if os_err is None:
            raise
        for tmp in checkpoint_dir(out_dir).glob(f"{int(epoch)}.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)  # the half-written one
        code = errno.errorcode.get(os_err.errno or 0, str(os_err.errno))
        kept = [e for e in all_epochs(out_dir) if e != int(epoch)]
        raise TrainingError(
            f"cannot write the checkpoint {target}: {code} ({os_err.strerror or os_err}); "
            + (
                f"the last good checkpoint (epoch {kept[0]}) is kept: free space and run "
                "the same command again to resume"
                if kept
                else "free space and run the same command again"
            )
        ) from None
    return target


def restore_newest(
    out_dir, like: dict, check: Callable[[dict], None] | None = None, start: int | None = None
) -> tuple[dict, dict]:
    """Restore ``(tree, meta)`` from the newest checkpoint (at most ``start``) that restores.

    A checkpoint whose metadata or arrays do not restore (broken JSON, truncated array
    files) is skipped with one log line, falling back to the one before. ``check(meta)``
    vets each readable checkpoint's metadata (it raises for a checkpoint that belongs to
    another config or dataset; that error is not caught).

    Raises:
      TrainingError: no checkpoint restores (the message names the folder and how to
        start again).
    """
    d = checkpoint_dir(out_dir)
    epochs = [e for e in all_epochs(out_dir) if start is None or e <= start]
    failed = []
    for epoch in epochs:
        try:
            meta = read_meta(out_dir, epoch)
        except Exception as err:  # a corrupt checkpoint: try the one before
            failed.append((epoch, err))
            continue
        if check is not None:
            check(meta)
        try:
            tree, meta = restore_checkpoint(out_dir, like, epoch)
        except Exception as err:
            failed.append((epoch, err))
            continue
        if failed:  # move the broken ones aside: the epochs after this one are redone
            aside = Path(out_dir).absolute() / "broken-checkpoints"
            aside.mkdir(exist_ok=True)
            for e, _ in failed:
                shutil.rmtree(aside / str(e), ignore_errors=True)
                (d / str(e)).rename(aside / str(e))
            bad = ", ".join(str(e) for e, _ in failed)
            _log.warning(
                "checkpoint(s) %s in %s do not restore (%s); resuming from epoch %d instead "
                "(the broken ones moved to %s)",
                bad,
                d,
                _short(failed[0][1]),
                epoch,
                aside,
            )
        return tree, meta
    raise TrainingError(
        f"no checkpoint in {d} restores"
        + (f" (epoch {failed[0][0]}: {_short(failed[0][1])})" if failed else "")
        + "; start again with --force (API: overwrite=True) or remove the folder"
    )


def _short(err: BaseException) -> str:
    """One line of an exception: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160]}" if text else type(err).__name__


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


__all__ = [
    "all_epochs",
    "checkpoint_dir",
    "latest_epoch",
    "read_meta",
    "restore_checkpoint",
    "restore_newest",
    "save_checkpoint",
]
