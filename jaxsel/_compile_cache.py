"""The one compile cache: jitted functions keyed by what they were built from.

Everything jaxsel compiles and keeps (train steps, predict functions, MEI and Gabor steps,
model inits) goes through :func:`cached`, so one call, :func:`clear_caches`, frees them all
(e.g. between benchmark workloads, or after a sweep over many architectures). The cache is
bounded: the oldest entries are dropped past ``MAX_ENTRIES``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any

import jax

MAX_ENTRIES = 128

_CACHE: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_LOCK = threading.Lock()


def cached(kind: str, key: Hashable, build: Callable[[], Any]) -> Any:
    """The object ``build()`` made for ``(kind, key)``, built once.

    Args:
      kind: what is cached (a name per call site, e.g. ``"predict"``).
      key: a hashable description of everything the built object depends on statically
        (model, config, shapes). Unhashable keys are not cached: ``build()`` is returned.
      build: makes the object (usually ``jax.jit(...)``), called at most once per key.
    """
    k = (kind, key)
    try:
        hash(k)
    except TypeError:
        return build()
    with _LOCK:
        if k in _CACHE:
            _CACHE.move_to_end(k)
            return _CACHE[k]
    value = build()
    with _LOCK:
        _CACHE[k] = value
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return value


def jit(fn: Callable, *, kind: str = "jit", key: Hashable | None = None, **jit_kwargs) -> Callable:
    """``jax.jit(fn, **jit_kwargs)``, compiled once per ``(fn, key, jit_kwargs)``."""
    static = tuple(sorted((k, _hashable(v)) for k, v in jit_kwargs.items()))
    return cached(kind, (fn, key, static), lambda: jax.jit(fn, **jit_kwargs))


def _hashable(v):
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def clear_caches() -> None:
    """Drop every compiled function jaxsel holds (and JAX's own caches)."""
    with _LOCK:
        _CACHE.clear()
    jax.clear_caches()


def cache_size() -> int:
    """Number of entries held (for tests and diagnostics)."""
    return len(_CACHE)


__all__ = ["cache_size", "cached", "clear_caches", "jit"]
