"""Early stopping and learning-rate decay on plateau, as a pure function on a small pytree.

Everything is an array, so ``jax.vmap`` runs one schedule per model (ensembles, sweeps).
Semantics follow neuralpredictors' ``early_stopping`` with a ``ReduceLROnPlateau``
scheduler and ``lr_decay_steps``: after ``patience`` epochs without an improvement larger than
``tolerance`` the run is on a plateau: the best parameters are restored and the learning rate
is multiplied by ``factor`` (not below ``min_lr``); the ``decay_steps``-th plateau stops
training (with the best parameters restored).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxsel._tree import tree_where


class PlateauState(NamedTuple):
    """Schedule state (all arrays; a leading model axis under vmap).

    Attributes:
      best_score: best validation score so far (-inf before the first epoch).
      best_epoch: epoch (0-based) of the best score, -1 before.
      bad_epochs: epochs since the last improvement.
      plateaus: plateaus reached so far.
      lr: current learning rate.
      stopped: training is over for this model.
    """

    best_score: jax.Array
    best_epoch: jax.Array
    bad_epochs: jax.Array
    plateaus: jax.Array
    lr: jax.Array
    stopped: jax.Array


class PlateauEvent(NamedTuple):
    """What an update decided (arrays): ``improved`` (save these params as best),
    ``restore`` (load the best params now), ``decayed`` (the learning rate changed)."""

    improved: jax.Array
    restore: jax.Array
    decayed: jax.Array


def plateau_init(lr) -> PlateauState:
    """Initial state for learning rate ``lr`` (scalar or array)."""
    lr = jnp.asarray(lr, jnp.float32)
    z = jnp.zeros_like(lr, jnp.int32)
    return PlateauState(jnp.full_like(lr, -jnp.inf), z - 1, z, z, lr, jnp.zeros_like(lr, bool))


def plateau_update(
    s: PlateauState, score, epoch, *, patience, factor, min_lr, decay_steps, tolerance
) -> tuple[PlateauState, PlateauEvent]:
    """Advance the schedule by one epoch with validation ``score`` (higher is better).

    A non-finite score never counts as an improvement. Once ``stopped``, the state no longer
    changes. All arguments may be arrays (one value per model under vmap).

    Returns:
      ``(new_state, event)``.
    """
    score = jnp.asarray(score, jnp.float32)
    active = ~s.stopped
    improved = active & jnp.isfinite(score) & (score > s.best_score + tolerance)
    best = jnp.where(improved, score, s.best_score)
    best_epoch = jnp.where(improved, jnp.asarray(epoch, jnp.int32), s.best_epoch)
    bad = jnp.where(improved, 0, s.bad_epochs + active.astype(jnp.int32))
    plateau = active & (bad >= patience)
    plateaus = s.plateaus + plateau.astype(jnp.int32)
    stop = plateau & (plateaus >= decay_steps)
    decayed = plateau & ~stop
    lr = jnp.where(decayed, jnp.maximum(s.lr * factor, min_lr), s.lr)
    bad = jnp.where(plateau, 0, bad)
    new = PlateauState(best, best_epoch, bad, plateaus, lr.astype(jnp.float32), s.stopped | stop)
    return new, PlateauEvent(improved, plateau, decayed & (lr != s.lr))


#: ``where(flag, a, b)`` leaf by leaf (``flag`` a scalar, or per model under vmap): an alias
#: of the package's internal ``tree_where``, kept public as ``jaxsel.train.select_tree``.
select_tree = tree_where


__all__ = ["PlateauEvent", "PlateauState", "plateau_init", "plateau_update", "select_tree"]
