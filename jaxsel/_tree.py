"""Small pytree helpers shared by every stage."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tree_where(flag, on_true, on_false):
    """``jnp.where(flag, a, b)`` leaf by leaf.

    ``flag`` is a scalar, or has the leading axes of the leaves (e.g. (K,) per model against
    leaves with a leading model axis): it is broadcast against each leaf's trailing axes.
    """
    flag = jnp.asarray(flag)

    def sel(a, b):
        f = flag.reshape(flag.shape + (1,) * (jnp.ndim(a) - flag.ndim))
        return jnp.where(f, a, b)

    return jax.tree.map(sel, on_true, on_false)


__all__ = ["tree_where"]
