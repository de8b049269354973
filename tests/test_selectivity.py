"""Selectivity on the twin's (fn, params) pairs: truth vs an 'untrained' pair (random filters),
input noise, labels, rate distributions, topographic maps and figures."""

import numpy as np
import pandas as pd
import pytest

from jaxsel._errors import DataError
from jaxsel.data._stimuli import (
    add_gaussian_noise,
    grating_stimuli,
    labels_from_file,
    labels_from_function,
    orientation_energy,
    orientation_labels,
)
from jaxsel.data._twin import twin_rates
from jaxsel.measures._selectivity import (
    compare_models,
    rate_distributions,
    selectivity,
    topographic_map,
)
from jaxsel.models import predict
from jaxsel.viz._measure_figures import (
    rate_distributions_figure,
    selectivity_figure,
    topographic_map_figure,
)

THETA0 = 0.6


def fn(p, x):
    return twin_rates(p, x)


def png_ok(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup(twin_factory):
    ds, twin = twin_factory(
        seed=0, n_neurons=60, n_train=200, n_validation=10, n_test=10, test_repeats=2
    )
    p = twin.params
    rng = np.random.default_rng(0)
    untrained = dict(p)  # same neurons, random (white-noise) filters
    for k in ("w_even", "w_odd"):
        w = rng.standard_normal(np.shape(p[k])).astype(np.float32)
        w -= w.mean(axis=(1, 2), keepdims=True)
        untrained[k] = w / np.linalg.norm(w.reshape(len(w), -1), axis=1)[:, None, None]
    sf0 = float(np.median(p["sf"]))
    images, labels = grating_stimuli((36, 64), THETA0, sf0, 16, seed=0)
    return ds, twin, untrained, images, labels


def angle_to(theta, ref):
    return np.abs((np.asarray(theta) - ref + np.pi / 2) % np.pi - np.pi / 2)


def test_predict_pads_batches_and_matches_twin(setup):
    ds, twin, _, images, _ = setup
    r = predict((fn, twin.params), images, batch_size=7)  # 32 = 4 * 7 + 4
    np.testing.assert_allclose(r, twin.rates(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="images"):
        predict((fn, twin.params), np.zeros((2, 3, 4, 5, 6)))


def test_grating_labels_are_recovered_from_the_image(setup):
    _, _, _, images, labels = setup
    np.testing.assert_array_equal(orientation_labels(images, THETA0).values, labels)
    e = orientation_energy(images, [THETA0, THETA0 + np.pi / 2])
    assert (e[labels == 1, 0] > 0.8).all() and (e[labels == 1, 1] < 0.05).all()
    per_neuron = orientation_labels(images, np.array([THETA0, THETA0 + np.pi / 2, THETA0]))
    assert per_neuron.dims == ("image", "neuron")
    np.testing.assert_array_equal(per_neuron.values[:, 1], 1 - labels)


def test_truth_is_selective_for_its_preferred_orientation(setup):
    _, twin, _, images, labels = setup
    s = selectivity(predict((fn, twin.params), images), labels)
    kind, d = twin.params["kind"], angle_to(twin.params["theta"], THETA0)
    responsive = kind < 3
    near, orth = responsive & (d < 0.25), responsive & (d > np.pi / 2 - 0.25)
    assert near.sum() >= 3 and orth.sum() >= 3
    assert (s["selectivity_index"].values[near] > 0.5).all()
    assert (s["selectivity_index"].values[orth] < -0.5).all()
    np.testing.assert_allclose(s["selectivity_index"].values[kind == 3], 0.0, atol=1e-6)
    np.testing.assert_allclose(s["information"].values[kind == 3], 0.0, atol=1e-5)
    # SI and rates agree with their definitions
    r = predict((fn, twin.params), images)
    rp, rn = r[labels == 1].mean(0), r[labels == 0].mean(0)
    np.testing.assert_allclose(s["selectivity_index"].values, (rp - rn) / (rp + rn), atol=1e-6)


def test_trained_vs_untrained_and_input_noise(setup, tmp_path):
    _, twin, untrained, images, labels = setup
    res = compare_models(
        {"untrained": (fn, untrained), "trained": (fn, twin.params)},
        images,
        labels,
        noise=(0.0, 60.0),
        seed=1,
    )
    assert dict(res.sizes) == {"model": 2, "noise": 2, "neuron": 60, "image": 32}
    np.testing.assert_allclose(
        res["rates"].sel(model="trained", noise=0.0).values,
        predict((fn, twin.params), images),
        rtol=1e-5,
    )
    info = res["information"]
    n_inf = (info >= 2 / 3).sum("neuron")
    assert (
        int(n_inf.sel(model="trained", noise=0.0))
        > 3 * int(n_inf.sel(model="untrained", noise=0.0)) + 2
    )
    # absolute selectivity of the informative truth neurons drops with input noise
    top = (info.sel(model="trained", noise=0.0) >= 2 / 3).values
    si = abs(res["selectivity_index"].sel(model="trained"))
    assert float(si.sel(noise=60.0)[top].mean()) < float(si.sel(noise=0.0)[top].mean())
    # identical noisy images for every model: untrained rates at noise 60 are reproducible
    noisy = add_gaussian_noise(images, 60.0, seed=2, clip=(0, 255))
    np.testing.assert_allclose(
        res["rates"].sel(model="untrained", noise=60.0).values,
        predict((fn, untrained), noisy),
        rtol=1e-5,
    )

    dist = rate_distributions(
        {
            "untrained": res["rates"].sel(model="untrained", noise=0.0),
            "trained": res["rates"].sel(model="trained", noise=0.0),
        },
        bins=30,
    )
    widths = dist["bin_right"] - dist["bin_left"]
    np.testing.assert_allclose((dist * widths).sum("bin").values, 1.0)
    rate_distributions_figure(dist, log_y=True, path=tmp_path / "rates.png")
    selectivity_figure(res, path=tmp_path / "sel.png")
    assert png_ok(tmp_path / "rates.png") and png_ok(tmp_path / "sel.png")


def test_topographic_map_matches_loop(setup, tmp_path):
    ds, twin, _, images, labels = setup
    s = selectivity(predict((fn, twin.params), images), labels)
    pos = np.stack([ds["cortex_x"].values, ds["cortex_y"].values], 1)
    m = topographic_map(s["selectivity_index"].values, pos, grid=(4, 5))
    x0, x1, y0, y1 = pos[:, 0].min(), pos[:, 0].max(), pos[:, 1].min(), pos[:, 1].max()
    ref = np.full((4, 5), np.nan)
    for iy in range(4):
        for ix in range(5):
            cx = np.minimum(((pos[:, 0] - x0) / (x1 - x0) * 5).astype(int), 4) == ix
            cy = np.minimum(((pos[:, 1] - y0) / (y1 - y0) * 4).astype(int), 3) == iy
            if (cx & cy).any():
                ref[iy, ix] = s["selectivity_index"].values[cx & cy].mean()
    np.testing.assert_allclose(m.values, ref)
    assert m["count"].sum() == 60
    # coords on a DataArray are enough; a stack of maps (per image) works too
    rates = ds["responses"].isel(trial=slice(0, 3))
    stack = topographic_map(rates.rename(trial="img"), grid=(4, 5))
    assert stack.shape == (3, 4, 5)
    topographic_map_figure(stack, titles=["a", "b", "c"], path=tmp_path / "topo.png")
    assert png_ok(tmp_path / "topo.png")


def test_labels_from_file_and_function(tmp_path):
    pd.DataFrame({"image_id": [5, 3, 9], "left": [1, 0, 1], "big": [0, 0, 1]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    lab = labels_from_file(tmp_path / "labels.csv", column="left", image_id=[9, 5, 3])
    np.testing.assert_array_equal(lab.values, [1, 1, 0])
    np.testing.assert_array_equal(lab["image_id"].values, [9, 5, 3])
    with pytest.raises(DataError, match="several label columns"):
        labels_from_file(tmp_path / "labels.csv")
    with pytest.raises(DataError, match="image ids"):
        labels_from_file(tmp_path / "labels.csv", column="left", image_id=[1])
    np.save(tmp_path / "lab.npy", np.array([True, False]))
    np.testing.assert_array_equal(labels_from_file(tmp_path / "lab.npy").values, [1, 0])
    imgs = np.stack([np.full((4, 4), v) for v in (10.0, 200.0, 90.0)])
    f = labels_from_function(imgs, lambda im: im.mean() > 127.5)
    np.testing.assert_array_equal(f.values, [0, 1, 0])
    g = labels_from_function(imgs, lambda b: b.mean(axis=(1, 2)) > 50, batched=True)
    np.testing.assert_array_equal(g.values, [0, 1, 1])
    with pytest.raises(DataError, match="not binary"):
        selectivity(np.ones((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="both classes"):
        selectivity(np.ones((3, 2)), np.array([1, 1, 1]))
