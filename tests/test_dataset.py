"""The canonical dataset: validation, statistics, subsets, repeats, batches, transforms."""

import numpy as np
import pytest

from jaxsel._errors import DataError
from jaxsel.data import (
    batches,
    fingerprint,
    global_image_stats,
    make_dataset,
    repeats,
    standardize,
    standardizer,
    subset,
    unique_images,
)


def arrays(n_neuron=4, seed=0):
    rng = np.random.default_rng(seed)
    tier = np.array(["train"] * 20 + ["validation"] * 5 + ["test"] * 7)
    image_id = np.r_[np.arange(25), [100, 101, 100, 102, 101, 100, 103]]
    images = rng.uniform(0, 255, (32, 6, 7))
    responses = rng.poisson(2.0, (32, n_neuron)).astype(float)
    return images, responses, image_id, tier


def build():
    images, responses, image_id, tier = arrays()
    return make_dataset(images, responses, image_id=image_id, tier=tier, source="mem.npz")


def test_layout_and_train_statistics():
    images, responses, image_id, tier = arrays()
    ds = make_dataset(
        images,
        responses,
        image_id=image_id,
        tier=tier,
        neuron_id=[10, 11, 12, 13],
        area=["V1"] * 4,
        cortex_xyz=np.zeros((4, 3)),
    )
    assert ds["images"].dims == ("trial", "channel", "y", "x")
    assert ds["images"].dtype == np.float32
    train = tier == "train"
    np.testing.assert_allclose(ds["image_mean"].values[0], images[train].mean(0), rtol=1e-5)
    np.testing.assert_allclose(ds["response_std"].values, responses[train].std(0), rtol=1e-5)
    m, s = global_image_stats(ds)
    assert m == pytest.approx(images[train].mean(), rel=1e-5)
    assert s == pytest.approx(images[train].std(), rel=1e-4)
    assert list(ds["cortex_z"].values) == [0, 0, 0, 0]


def test_subset_keeps_train_statistics():
    ds = build()
    test = subset(ds, neurons=[2, 0], tiers="test")
    assert list(test["neuron_id"].values) == [2, 0]
    assert set(test["tier"].values) == {"test"}
    np.testing.assert_array_equal(test["response_mean"].values, ds["response_mean"].values[[2, 0]])
    with pytest.raises(DataError, match="unknown neuron ids"):
        subset(ds, neurons=[99])


def test_repeats_ragged_against_loop():
    ds = build()
    rep = repeats(ds)
    assert list(rep["image_id"].values) == [100, 101, 102, 103]
    assert list(rep["n_repeats"].values) == [3, 2, 1, 1]
    r = ds["responses"].values
    ids = ds["image_id"].values
    for k, i in enumerate(rep["image_id"].values):
        trials = np.flatnonzero((ids == i) & (ds["tier"].values == "test"))
        np.testing.assert_array_equal(rep.values[k, : len(trials)], r[trials])
        assert np.isnan(rep.values[k, len(trials) :]).all()
    ui = unique_images(ds)
    assert ui.sizes["image"] == 4 and list(ui["image_id"].values) == [100, 101, 102, 103]


def test_batches_fixed_shape_and_cover_every_trial_once():
    ds = build()
    seen = []
    for b in batches(ds, "train", 8, shuffle=True, seed=1, epoch=2):
        assert b.images.shape == (8, 1, 6, 7) and b.responses.shape == (8, 4)
        seen.extend(b.trial[b.mask].tolist())
    assert sorted(seen) == list(range(20))
    again = [b.trial.tolist() for b in batches(ds, "train", 8, shuffle=True, seed=1, epoch=2)]
    other = [b.trial.tolist() for b in batches(ds, "train", 8, shuffle=True, seed=1, epoch=3)]
    assert again != other
    assert again == [
        b.trial.tolist() for b in batches(ds, "train", 8, shuffle=True, seed=1, epoch=2)
    ]


def test_standardizer_is_invertible_and_zscores_train():
    ds = build()
    st = standardizer(ds)
    z = standardize(ds, st)
    train = subset(z, tiers="train")
    assert float(train["images"].mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(train["images"].std()) == pytest.approx(1.0, abs=1e-4)
    x = ds["images"].values
    np.testing.assert_allclose(st.images_inverse(st.images(x)), x, rtol=1e-5, atol=1e-3)
    r = ds["responses"].values
    np.testing.assert_allclose(st.responses_inverse(st.responses(r)), r, rtol=1e-6)
    pp = standardizer(ds, per_pixel=True)
    assert pp.image_mean.shape == (1, 6, 7)


def test_standardizer_floor_protects_silent_neurons():
    images, responses, image_id, tier = arrays()
    responses[:, 1] = 0.0
    ds = make_dataset(images, responses, image_id=image_id, tier=tier)
    st = standardizer(ds)
    assert np.isfinite(st.responses(ds["responses"].values)).all()
    assert st.response_scale[1] == pytest.approx(0.01 * ds["response_std"].values.mean(), rel=1e-5)


def test_fingerprint_changes_with_content():
    a, b = build(), build()
    assert fingerprint(a) == fingerprint(b)
    images, responses, image_id, tier = arrays()
    responses[0, 0] += 1
    c = make_dataset(images, responses, image_id=image_id, tier=tier)
    assert fingerprint(c) != fingerprint(a)


# ---- bad input: every error names the source, the field and what was expected -------------


def test_trial_count_mismatch():
    images, responses, image_id, tier = arrays()
    with pytest.raises(DataError, match=r"mem.npz: field 'images/responses'.*31 image trials"):
        make_dataset(images[:31], responses, image_id=image_id, tier=tier, source="mem.npz")


def test_nan_response_named_by_trial_and_neuron():
    images, responses, image_id, tier = arrays()
    responses[7, 2] = np.nan
    with pytest.raises(DataError, match=r"field 'responses'.*trial 7.*neuron 2"):
        make_dataset(images, responses, image_id=image_id, tier=tier, source="mem.npz")


def test_negative_counts_rejected_when_counts():
    images, responses, image_id, tier = arrays()
    responses[3, 1] = -1
    make_dataset(images, responses, image_id=image_id, tier=tier)  # fine for dF/F
    with pytest.raises(DataError, match="negative spike count"):
        make_dataset(images, responses, image_id=image_id, tier=tier, counts=True)


def test_missing_tier():
    images, responses, image_id, tier = arrays()
    tier = np.where(tier == "validation", "train", tier)
    with pytest.raises(DataError, match="no trials in tier 'validation'"):
        make_dataset(images, responses, image_id=image_id, tier=tier)


def test_unknown_tier_value():
    images, responses, image_id, tier = arrays()
    tier[0] = "final_test"
    with pytest.raises(DataError, match="unknown tier values"):
        make_dataset(images, responses, image_id=image_id, tier=tier)


def test_test_images_without_repeats():
    images, responses, image_id, tier = arrays()
    image_id = np.arange(32)
    with pytest.raises(DataError, match="no test image is shown more than once"):
        make_dataset(images, responses, image_id=image_id, tier=tier)
    make_dataset(images, responses, image_id=image_id, tier=tier, require_repeats=False)


def test_wrong_shapes():
    images, responses, image_id, tier = arrays()
    with pytest.raises(DataError, match="field 'images'"):
        make_dataset(images[:, :, :, None, None], responses, image_id=image_id, tier=tier)
    with pytest.raises(DataError, match="field 'responses'"):
        make_dataset(images, responses[:, :, None], image_id=image_id, tier=tier)
    with pytest.raises(DataError, match="field 'image_id'"):
        make_dataset(images, responses, image_id=image_id[:5], tier=tier)
    with pytest.raises(DataError, match="neuron ids are not unique"):
        make_dataset(images, responses, image_id=image_id, tier=tier, neuron_id=[1, 1, 2, 3])
