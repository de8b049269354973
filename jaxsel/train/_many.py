"""``fit_many``: K independent models trained as ONE compiled program.

Per-neuron models (seed 002), ensemble members (seed 004) and hyperparameter-sweep points
(seed 001) are the same thing here: a leading **model axis** on parameters, BN state,
optimizer state and early-stopping state. What differs per model is an array along that axis:

* ``seeds`` — initialisation, readout sampling and (by default) batch order, exactly as in
  :func:`jaxsel.fit` with that seed;
* ``hparams`` — per-model values of ``lr``, ``gamma_input``, ``gamma_hidden``,
  ``gamma_readout`` (regularizers), ``lr_decay_factor``, ``patience``, ``lr_decay_steps``,
  ``min_lr``, ``tolerance``, ``max_epochs`` (schedule) and ``init_mu_range``, ``init_sigma``,
  ``init_std`` (initialisation);
* ``targets`` — which neurons each model predicts (``"per_neuron"``: one model per neuron).

Each model early-stops on its own validation curve (the schedule of
:func:`jaxsel.train.plateau_update` runs elementwise on (K,) arrays); a stopped model is frozen by a
``where`` inside the same compiled step (nothing is retraced), and its best parameters are
restored per model. One epoch is a Python loop over one jitted step of all models.
Optionally the model axis is sharded over ``jax.devices()`` (all hosts): see
:func:`jaxsel.train.model_mesh` and :func:`jaxsel.train.shard_models`. With
``out_dir`` the whole stack is one orbax checkpoint per epoch (resumable).

Equivalence: model k of ``fit_many(cfg, ds, seeds=S, hparams=H)`` reproduces
``fit(cfg.replace(**H[k]), ds, seed=S[k])`` up to float32 reordering (tested). For
per-neuron targets the responses are scaled by the population's train-tier std (as in a fit
on all neurons); this equals a single-neuron ``fit`` unless the neuron's std is below 1 % of
the population mean (the standardizer's floor).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from jaxsel._compile_cache import cached
from jaxsel._errors import ConfigError
from jaxsel.models import CONV_IMPLS, build_model
from jaxsel.train import _sharding as S
from jaxsel.train._fit_parts import check_fit_args, check_max_epochs, prepare_data, resolve_config
from jaxsel.train._many_inputs import (
    INIT_FIELDS,
    PER_MODEL_FIELDS,
    REG_FIELDS,
    SCHEDULE_FIELDS,
    per_model,
    per_model_values,
)
from jaxsel.train._many_loop import ManyRun, many_epochs, many_result, resume_run
from jaxsel.train._many_result import ManyResult
from jaxsel.train._many_setup import (
    check_seeds,
    initial_stack,
    meta_setup,
    resolve_formulation,
    val_batches,
)
from jaxsel.train._many_steps import make_many_epoch, make_many_scores
from jaxsel.train._step import make_optimizer

# --------------------------------------------------------------------------- fit_many


def fit_many(
    config,
    dataset: xr.Dataset,
    *,
    seeds: int | Sequence[int] | np.ndarray = 0,
    hparams: dict | None = None,
    targets=None,
    order_seed: int | None = None,
    mesh=None,
    formulation: str = "auto",
    conv: str = "auto",
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    max_epochs: int | None = None,
    progress: bool | None = None,
) -> ManyResult:
    """Train K independent models in one compiled program, each early-stopping on its own.

    Args:
      config: base config (a :class:`~jaxsel.train.Config`, a named config or dict).
      dataset: dataset with train and validation tiers (see ``fit``).
      seeds: one seed (shared) or one per model.
      hparams: ``{field: value or (K,) values}`` for fields in :data:`PER_MODEL_FIELDS`.
      targets: None (every model predicts every neuron), ``"per_neuron"`` (model k predicts
        neuron k) or an int array (K, n_out) of neuron indices.
      order_seed: one batch order for every model (from this seed); default: each model's
        own seed (as ``fit``), which is shared automatically when all seeds are equal.
      mesh: a :func:`jaxsel.train.model_mesh` (or ``True`` for all devices) to shard
        the model axis; None runs on the default device.
      formulation: ``"vmap"`` (vmapped single-model step), ``"loop"`` (the same step
        called for one model at a time inside each batch step: ordinary convolutions, the
        fastest form on CPU), ``"fused"`` (the per-neuron
        formulation of :func:`jaxsel.train.make_per_neuron_step`; needs a shared batch order) or
        ``"auto"`` (``"vmap"`` when sharded over a mesh, else ``"loop"`` on CPU and
        ``"vmap"`` elsewhere).
      conv: how the core's convolutions are computed, ``"xla"``, ``"fft"`` or ``"shifted"``
        (:func:`jaxsel.models.conv_implementation`); ``"auto"``: on CPU by FFT where that is
        faster (few channels, large kernels: 3x faster for the 4-channel per-neuron CNN
        of ``benchmarks/``), else XLA's. Results agree to float32 rounding.
      out_dir: run directory for one orbax checkpoint of the whole stack per epoch.
      resume, overwrite: as in ``fit``.
      max_epochs: override ``config.train.max_epochs`` (and any per-model value above it).
      progress: log one line per epoch.

    Returns:
      A :class:`ManyResult`.

    Raises:
      ConfigError: per-model lengths that disagree, fields that cannot vary per model,
        a resume with a different setup.
      DataError: invalid data or target indices.
    """
    check_fit_args(
        "fit_many",
        dataset,
        max_epochs=max_epochs,
        progress=progress,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
    )
    check_seeds(seeds, order_seed)
    if conv not in CONV_IMPLS:
        raise ConfigError(f"conv = {conv!r}: use one of {CONV_IMPLS}")
    cfg = resolve_config(config)
    if max_epochs is not None:
        cfg = cfg.replace(max_epochs=int(max_epochs))
    check_max_epochs("fit_many", cfg)
    t = cfg.train
    data = prepare_data(dataset, t)
    seeds, hp, targets, k = per_model(seeds, hparams, targets, data.ds.sizes["neuron"])
    vals = per_model_values(cfg, hp, k)
    if max_epochs is not None:
        vals["max_epochs"] = np.minimum(vals["max_epochs"], int(max_epochs))
    if order_seed is None and np.all(seeds == seeds[0]):
        order_seed = int(seeds[0])
    shared = order_seed is not None
    formulation = resolve_formulation(formulation, mesh, cfg, shared, k)
    if mesh is True:
        mesh = S.model_mesh()
    kp = S.padded_size(k, mesh)
    model = build_model(cfg.model, image_shape=data.image_shape, n_neurons=targets.shape[1])
    tx = make_optimizer(t.lr)
    tree, per = initial_stack(cfg, data, seeds, vals, targets, tx, kp, mesh)
    epoch_fn, scores_fn = _compiled(model, t, tx, shared, formulation, conv)
    setup = meta_setup(cfg, seeds, hp, targets)
    rows: list[dict] = []
    start = 0
    if out_dir is not None:
        out_dir = Path(out_dir)
        tree, start, rows = resume_run(
            out_dir, tree, data.fingerprint, setup, resume=resume, overwrite=overwrite
        )
    run = ManyRun(
        cfg=cfg,
        data=data,
        k=k,
        kp=kp,
        n_out=targets.shape[1],
        seeds=seeds,
        order_seed=order_seed,
        shared=shared,
        bs=min(t.batch_size, data.n_train),
        mesh=mesh,
        per=per,
        epoch_fn=epoch_fn,
        scores_fn=scores_fn,
        train_xr=S.replicate((data.x_train, data.r_train), mesh),
        val=val_batches(data.x_val, data.r_val, t.eval_batch_size, mesh),
        out_dir=out_dir,
        setup=setup,
        log=progress if progress is not None else t.progress,
    )
    tree = many_epochs(run, tree, rows, start, int(vals["max_epochs"].max()) if k else 0)
    return many_result(run, tree, rows, hp, targets)


def _compiled(model, t, tx, shared: bool, formulation: str, conv: str):
    """``(epoch_fn, scores_fn)`` of the run, from the compile cache where it has them."""
    epoch_fn = cached(
        "many_epoch",
        (model, t.loss, t.eps, t.gamma_shape, shared, formulation, conv),
        lambda: make_many_epoch(
            model, t, tx, shared_images=shared, formulation=formulation, conv=conv
        ),
    )
    scores_fn = cached("many_scores", model, lambda: make_many_scores(model))
    return epoch_fn, scores_fn


__all__ = [
    "INIT_FIELDS",
    "PER_MODEL_FIELDS",
    "REG_FIELDS",
    "SCHEDULE_FIELDS",
    "ManyResult",
    "fit_many",
    "make_many_epoch",
    "make_many_scores",
]
