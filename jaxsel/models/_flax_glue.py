"""The flax plumbing every model type shares: init compiled once per module (in the one
compile cache), variables as plain dicts split into ``(params, state)``, and ``apply`` in
eval or training mode (BatchNorm statistics from the unmasked trials, readout samples)."""

from __future__ import annotations

import functools

import jax

from jaxsel._compile_cache import cached


def plain(tree):
    """Nested Mapping (possibly FrozenDict) -> nested plain (mutable) dict."""
    if hasattr(tree, "items"):
        return {k: plain(v) for k, v in tree.items()}
    return tree


def jit_init(kind: str, module):
    """``module.init`` compiled once per (hashable) module under ``kind`` in the one compile
    cache: eager init would compile every primitive separately."""
    return cached(
        kind,
        # flax Modules hash by their fields at runtime; pyright reads eq=True as unhashable
        module,
        lambda: jax.jit(functools.partial(module.init, train=False)),
    )


def init_variables(kind: str, module, key, x) -> tuple[dict, dict]:
    """``(params, state)`` of ``module`` initialised on the dummy input ``x`` (``key`` split
    into the parameter and readout-sample keys)."""
    k_params, k_sample = jax.random.split(key)
    variables = plain(jit_init(kind, module)({"params": k_params, "sample": k_sample}, x))
    params = variables.pop("params")
    return params, variables


def apply_module(module, params, state, inputs, *, train: bool, rng, mask):
    """``(outputs, new_state)`` of ``module`` on ``inputs``; in eval mode ``new_state is
    state``. Training mode needs ``rng`` (readout position samples) and updates BatchNorm
    statistics from the trials ``mask`` marks."""
    variables = {"params": params, **state}
    if not train:
        return module.apply(variables, inputs, train=False), state
    if rng is None:
        raise ValueError("train=True needs an rng for the readout position samples")
    mutable = ["batch_stats"] if "batch_stats" in state else []
    out, updates = module.apply(
        variables, inputs, train=True, mask=mask, rngs={"sample": rng}, mutable=mutable
    )
    new_state = dict(state)
    if mutable:
        new_state["batch_stats"] = plain(updates["batch_stats"])
    return out, new_state


__all__ = ["apply_module", "init_variables", "jit_init", "plain"]
