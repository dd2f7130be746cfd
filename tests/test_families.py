"""Every registered family end to end: build -> one training step -> export of each of its profiles.

Parametrised over the registry (:func:`sertiny.models.families`), so a family is covered the
moment it is registered: its model builds, a training step changes its weights, the trained
weights fold into its export graph, and every profile its :class:`~sertiny.models.Family`
record claims converts (full unroll float and int8; chunked float and int8 where it
streams) and computes what the Keras model computes. Tiny sizes keep it fast: F = 6
features, C = 3 classes, T = 12 frames (a partial last chunk of 5), hidden 8 (vit's four
heads need a multiple of 4).
"""

import numpy as np
import pytest

pytest.importorskip("jax", reason="training needs the [train] extra (Keras 3 + JAX)")
pytest.importorskip("tensorflow", reason="export needs the [train] extra (TensorFlow)")

from sertiny.models import families  # noqa: E402

F, C, T, HIDDEN, CHUNK, N_CLIPS = 6, 3, 12, 8, 5, 12
AUX_HEADS = (("sex", 2),)  # what a multitask family trains beside the emotion head


def _data():
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(n, F)).astype(np.float32) for n in rng.integers(T // 2, 2 * T, N_CLIPS)]
    return clips, (np.arange(N_CLIPS) % C).astype(np.int32)


def _train_one_step(family, clips, labels):
    """(model config, weights before, fold result and trainer after one full-batch step)."""
    from sertiny.models import create_model, model_config
    from sertiny.models.weights import get_weights
    from sertiny.training import TrainConfig
    from sertiny.training.inputs import stack_clips
    from sertiny.training.loop import train_fold

    config = model_config(f"{family.name}_h{HIDDEN}", n_features=F, n_classes=C, seq_len=T,
                          aux_heads=AUX_HEADS if family.multitask else ())
    x, _ = stack_clips(clips, T)
    before = get_weights(create_model(config))  # the same seed: the weights training starts from
    recipe = TrainConfig(model=config.name, epochs=1, batch_size=N_CLIPS, lr=1e-2, seq_len=T)
    aux = np.arange(N_CLIPS)[:, None] % 2 if config.aux_heads else None
    result, trainer = train_fold(config, recipe, x, labels, None, None, seed=0, aux_train=aux)
    return config, before, result, trainer.predict(x)


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_family_builds_trains_one_step_and_exports_every_profile(family):
    from sertiny.export import ExportConfig
    from sertiny.export.graph import fold_weights
    from sertiny.export.variants import build_variants, predict

    clips, labels = _data()
    config, before, result, keras_probs = _train_one_step(family, clips, labels)
    assert set(result.weights) == set(before)
    assert any(not np.array_equal(before[k], result.weights[k]) for k in before), "the step changed no weight"
    assert np.isfinite(result.history[0]["train_loss"])
    if not family.exportable:
        return

    chunks = (CHUNK,) if family.streaming else ()
    fw = fold_weights(result.weights, config)
    export = ExportConfig(chunks=chunks, calib_clips=N_CLIPS, chunk_calib_samples=200)
    variants = build_variants(fw, config, export, clips, labels)
    expected = {"f32", "int8"} | {f"{mode}_chunk{k}" for k in chunks for mode in ("f32", "int8")}
    assert set(variants) == expected

    float_probs = predict(variants["f32"], clips, T)
    np.testing.assert_allclose(float_probs, keras_probs, atol=1e-5)  # the trained model, exported
    for name, variant in variants.items():
        probs = predict(variant, clips, T)
        assert probs.shape == (N_CLIPS, C) and np.allclose(probs.sum(1), 1, atol=0.05), name
        if variant.quantized:
            assert variant.meta["dtype"] == "int8", name
            assert np.abs(probs - float_probs).max() < 0.3, name  # int8 rounding (vit: 0.2), not another model
        else:
            np.testing.assert_allclose(probs, float_probs, atol=1e-5, err_msg=name)  # chunked: exact
