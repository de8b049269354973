"""Cluster ensemble members (or neurons) by their responses: PCA then k-means, in JAX.

Members of a model ensemble are clustered by how they respond to the same stimuli.
:func:`pca` (SVD of the centred data), :func:`kmeans` (Lloyd iterations from k-means++ seeds,
several restarts vmapped, the lowest inertia kept) and :func:`cluster_members` (responses
(model, stimulus, neuron) -> labels, centroids and embedding as xarray) are pure JAX.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from jaxsel._errors import DataError


def pca(x, n_components: int):
    """Principal components of the rows of ``x`` (samples, features).

    Returns:
      ``(scores (samples, n), components (n, features), explained_variance_ratio (n,))``.
      Signs are fixed so the largest-magnitude loading of each component is positive.
    """
    x = jnp.asarray(x, jnp.float32)
    xc = x - x.mean(0)
    _u, s, vt = jnp.linalg.svd(xc, full_matrices=False)
    n = min(n_components, vt.shape[0])
    vt = vt[:n]
    sign = jnp.sign(vt[jnp.arange(n), jnp.argmax(jnp.abs(vt), axis=1)])
    vt = vt * sign[:, None]
    var = s**2
    return xc @ vt.T, vt, var[:n] / jnp.maximum(var.sum(), 1e-30)


def _kmeanspp(key, x, k: int):
    n = x.shape[0]
    first = jax.random.randint(key, (), 0, n)
    cents = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])

    def body(i, carry):
        cents, key = carry
        key, sub = jax.random.split(key)
        d = jnp.min(
            jnp.sum((x[:, None] - cents[None]) ** 2, -1)
            + jnp.where(jnp.arange(k)[None] < i, 0.0, jnp.inf),
            axis=1,
        )
        p = d / jnp.maximum(d.sum(), 1e-30)
        j = jax.random.choice(sub, n, p=jnp.where(d.sum() > 0, p, jnp.full(n, 1.0 / n)))
        return cents.at[i].set(x[j]), key

    cents, _ = jax.lax.fori_loop(1, k, body, (cents, key))
    return cents


@partial(jax.jit, static_argnames=("k", "iters"))
def _kmeans_one(key, x, k: int, iters: int):
    cents = _kmeanspp(key, x, k)

    def step(cents, _):
        d = jnp.sum((x[:, None] - cents[None]) ** 2, -1)
        lab = jnp.argmin(d, 1)
        oh = jax.nn.one_hot(lab, k, dtype=x.dtype)
        cnt = oh.sum(0)
        new = jnp.where(cnt[:, None] > 0, (oh.T @ x) / jnp.maximum(cnt, 1)[:, None], cents)
        return new, None

    cents, _ = jax.lax.scan(step, cents, None, length=iters)
    d = jnp.sum((x[:, None] - cents[None]) ** 2, -1)
    lab = jnp.argmin(d, 1)
    return lab, cents, jnp.sum(jnp.min(d, 1))


def kmeans(x, k: int, *, seed: int = 0, restarts: int = 8, iters: int = 100):
    """k-means (Lloyd, k-means++ init), ``restarts`` runs vmapped, best inertia kept.

    Args:
      x: (samples, features).
      k: clusters (1 <= k <= samples).

    Returns:
      ``(labels (samples,), centroids (k, features), inertia)`` as NumPy; labels are
      renumbered by first appearance (sample 0 is in cluster 0).
    """
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or not 1 <= k <= x.shape[0]:
        raise DataError(
            f"k = {k} clusters for data of shape {tuple(x.shape)}",
            field="k",
            expected="(samples, features) with 1 <= k <= samples",
        )
    keys = jax.random.split(jax.random.key(seed), restarts)
    labs, cents, inert = jax.vmap(lambda kk: _kmeans_one(kk, x, k, iters))(keys)
    b = int(jnp.argmin(inert))
    lab, cen = np.asarray(labs[b]), np.asarray(cents[b])
    order = list(dict.fromkeys(lab.tolist())) + [c for c in range(k) if c not in lab]
    remap = np.empty(k, int)
    remap[order] = np.arange(k)
    return remap[lab], cen[order], float(inert[b])


def cluster_members(
    responses: xr.DataArray,
    k: int,
    *,
    n_components: int = 10,
    standardize: bool = True,
    seed: int = 0,
) -> xr.Dataset:
    """Cluster ensemble members by their responses to the same stimuli.

    Args:
      responses: (model, stimulus, neuron) DataArray (e.g. from
        :func:`jaxsel.insilico.ensemble_responses`).
      k: clusters.
      n_components: PCA components kept (<= members).
      standardize: z-score each (stimulus, neuron) feature over members first.

    Returns:
      ``xr.Dataset`` over ``model``: ``label`` (cluster of each member), ``embedding``
      (model, component), ``explained_variance_ratio`` (component), attrs ``inertia``;
      cluster sizes in ``size`` (cluster).
    """
    if responses.ndim != 3 or responses.dims[0] != "model":
        raise DataError(
            f"responses have dims {responses.dims}",
            field="responses",
            expected="(model, stimulus, neuron)",
        )
    x = np.asarray(responses.values, np.float64).reshape(responses.shape[0], -1)
    if not np.all(np.isfinite(x)):
        raise DataError("non-finite responses", field="responses")
    if standardize:
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    scores, _, evr = pca(x, min(n_components, x.shape[0]))
    lab, _, inertia = kmeans(np.asarray(scores), k, seed=seed)
    coords = {c: v for c, v in responses.coords.items() if v.dims == ("model",)}
    return xr.Dataset(
        {
            "label": ("model", lab),
            "embedding": (("model", "component"), np.asarray(scores)),
            "explained_variance_ratio": ("component", np.asarray(evr)),
            "size": ("cluster", np.bincount(lab, minlength=k)),
        },
        coords={
            "model": responses["model"].values
            if "model" in responses.coords
            else np.arange(responses.shape[0]),
            **coords,
            "cluster": np.arange(k),
        },
        attrs={"inertia": inertia},
    )


__all__ = ["cluster_members", "kmeans", "pca"]
