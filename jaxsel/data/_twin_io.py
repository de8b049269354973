"""Writing a simulated digital-twin experiment to disk: the dataset as a static folder and
the ground truth beside it, in one atomic step."""

from __future__ import annotations

from pathlib import Path

from jaxsel._atomic import atomic_directory, check_target
from jaxsel.data._static_save import save_static
from jaxsel.data._twin import save_twin
from jaxsel.data._twin_simulate import simulate


def write_twin(
    out: str | Path, *, force: bool = False, seed: int = 0, preset: str | None = None, **config
):
    """Simulate the twin and write ``out/static`` and ``out/ground_truth`` atomically.

    Args:
      out: the output folder (must be new or empty unless ``force``).
      force: replace an existing ``out``.
      seed: the simulation seed.
      preset: the twin preset (``clean`` if None; :data:`jaxsel.data.TWIN_PRESETS`).
      **config: fields of :class:`jaxsel.data.TwinConfig` (``n_neurons``,
        ``n_train``, ...), passed to :func:`~jaxsel.data.simulate`.

    Returns:
      ``(dataset, twin)``.

    Raises:
      DataError: ``out`` exists and is not empty while ``force`` is false.
    """
    check_target(out, overwrite=force)  # before the (long) simulation
    ds, twin = simulate(seed, preset=preset, **config)
    with atomic_directory(Path(out), overwrite=force) as tmp:
        save_static(ds, tmp / "static")
        save_twin(twin, tmp / "ground_truth")
    return ds, twin


__all__ = ["write_twin"]
