"""Regenerate ``tests/data/saved_model_v1`` (a small saved model in model format 1).

The folder is a compatibility fixture: ``tests/test_model_file.py`` loads it and checks that
its predictions for ``saved_model_v1_images.npy`` still equal ``saved_model_v1_rates.npy``
(to 1e-5), so a model written by this version of jaxsel keeps loading in later ones.

It is an LN model trained for 2 epochs on a tiny digital twin (6 neurons, 18x32 images).
Only regenerate it when the model FORMAT changes on purpose (then also bump
``FORMAT_VERSION`` and keep the old folder under a new name, e.g. ``saved_model_v2``)::

    python tests/data/make_saved_model.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TWIN = {
    "seed": 1,
    "n_neurons": 6,
    "shape": (18, 32),
    "n_train": 64,
    "n_validation": 16,
    "n_test": 8,
    "test_repeats": 2,
}


def main() -> None:
    from jaxsel.data._twin_simulate import simulate
    from jaxsel.models import predict
    from jaxsel.train import fit, save_model

    ds, _ = simulate(**TWIN)
    res = fit("ln", ds, seed=0, max_epochs=2, progress=False)
    save_model(res, HERE / "saved_model_v1", dataset=ds, overwrite=True)
    images = ds["images"].values[:5].astype(np.float32)  # raw pixels, (5, 1, 18, 32)
    np.save(HERE / "saved_model_v1_images.npy", images)
    np.save(HERE / "saved_model_v1_rates.npy", predict(res, images).astype(np.float32))
    print(f"wrote {HERE / 'saved_model_v1'} and its images/rates")


if __name__ == "__main__":
    main()
