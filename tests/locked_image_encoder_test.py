import keras
import keras_hub
import numpy as np
import pytest
from conftest import make_resnet_backbone
from conftest import random_images
from test_case import run_export_test
from test_case import run_layer_test
from test_case import run_model_saving_test
from test_case import run_serialization_test

from keras_lit.layers import LockedImageEncoder


def tiny_vit(**kwargs):
    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
        **kwargs,
    )


def test_keras_cv_backbone_is_locked_and_pooled():
    backbone = make_resnet_backbone()
    encoder = LockedImageEncoder(backbone, pooling="avg")
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    outputs = encoder(images)
    assert tuple(outputs.shape) == (2, encoder.output_dim) == (2, 64)
    expected = np.mean(np.asarray(backbone(images)), axis=(1, 2))
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    assert encoder.locked and encoder.trainable_weights == []
    assert len(encoder.non_trainable_weights) == len(backbone.weights) > 0
    assert encoder.image_size == (32, 32)


def test_inference_mode_whatever_training_says():
    # BatchNorm statistics stay frozen and dropout stays off.
    encoder = LockedImageEncoder(make_resnet_backbone())
    before = [np.array(w) for w in encoder.weights]
    images = random_images(4).astype("float32")
    first = encoder(images, training=True)
    np.testing.assert_array_equal(first, encoder(images, training=False))
    for old, new in zip(before, encoder.weights):
        np.testing.assert_array_equal(old, np.asarray(new))
    vit = LockedImageEncoder(tiny_vit(dropout_rate=0.5), pooling="cls")
    a = vit(images, training=True)
    b = vit(images, training=True)
    np.testing.assert_array_equal(a, b)


def test_unlocked_backbone_trains_and_uses_training_mode():
    encoder = LockedImageEncoder(tiny_vit(dropout_rate=0.5), locked=False)
    assert not encoder.locked and len(encoder.trainable_weights) > 0
    images = random_images(4).astype("float32")
    a = encoder(images, training=True)
    b = encoder(images, training=True)
    assert not np.allclose(a, b)


def test_vit_cls_pooling_is_first_token():
    backbone = tiny_vit()
    encoder = LockedImageEncoder(backbone, pooling="cls")
    images = np.random.default_rng(1).normal(size=(3, 32, 32, 3))
    expected = np.asarray(backbone(images))[:, 0, :]
    np.testing.assert_allclose(encoder(images), expected, rtol=1e-6)
    assert encoder.image_size == (32, 32) and encoder.output_dim == 8
    avg = LockedImageEncoder(backbone, pooling="avg")
    np.testing.assert_allclose(
        avg(images), np.asarray(backbone(images)).mean(axis=1), rtol=1e-5
    )


def test_none_pooling_for_pooled_models():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(5, 3)(inputs)
    )
    model = keras.Model(inputs, outputs)
    encoder = LockedImageEncoder(model, pooling="none", value_range=(0, 1))
    assert encoder.output_dim == 5
    with pytest.raises(ValueError, match="pooling='cls'"):
        LockedImageEncoder(model, pooling="cls")
    with pytest.raises(ValueError, match="pooling='none'"):
        LockedImageEncoder(tiny_vit(), pooling="none")


@pytest.mark.parametrize("pooling", ["mean2", "", None])
def test_unknown_pooling(pooling):
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        LockedImageEncoder(tiny_vit(), pooling=pooling)


def test_image_size_required_for_dynamic_backbones():
    import keras_cv

    backbone = keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 16],
        stackwise_blocks=[2, 2],
        stackwise_strides=[1, 2],
        include_rescaling=True,
    )
    with pytest.raises(ValueError, match="image_size"):
        LockedImageEncoder(backbone)
    encoder = LockedImageEncoder(backbone, image_size=(24, 24))
    assert encoder.image_size == (24, 24)


def test_preprocess_matches_numpy():
    encoder = LockedImageEncoder(
        tiny_vit(),
        pooling="cls",
        value_range=(-1, 1),
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.25, 2.0),
    )
    images = random_images(2)
    expected = (images / 255.0 * 2.0 - 1.0 - [0.1, 0.2, 0.3]) / [
        0.5,
        0.25,
        2.0,
    ]
    np.testing.assert_allclose(
        encoder.preprocess(images), expected, rtol=1e-5, atol=1e-5
    )
    resized = encoder.preprocess(random_images(2, size=48))
    assert tuple(resized.shape) == (2, 32, 32, 3)


def test_optional_image_head_is_the_only_trainable_part():
    encoder = LockedImageEncoder(make_resnet_backbone(), head_dim=12)
    encoder.build()
    assert encoder.output_dim == 12 and encoder.feature_dim == 64
    trainable = encoder.trainable_weights
    assert len(trainable) == 2
    assert trainable[0] is encoder.head.kernel
    assert trainable[1] is encoder.head.bias


def test_serialization_and_saving(tmp_path):
    backbone = tiny_vit()
    images = random_images(2).astype("float32")
    encoder, features = run_layer_test(
        cls=LockedImageEncoder,
        init_kwargs={
            "backbone": backbone,
            "pooling": "cls",
            "value_range": (0, 1),
            "head_dim": 4,
        },
        input_data=images,
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=2,  # the image head only
        expected_num_non_trainable_weights=len(backbone.weights),
    )
    restored = run_serialization_test(encoder)
    assert restored.locked and restored.trainable_weights != []
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, encoder(inputs))
    run_model_saving_test(model, images, tmp_path)

    # A SavedModel of the encoder gives the same embeddings.
    archive = keras.export.ExportArchive()
    archive.track(encoder)
    archive.add_endpoint(
        "embed",
        lambda images: {"embeddings": encoder(images)},
        input_signature=[
            keras.InputSpec(shape=(None, 32, 32, 3), dtype="float32")
        ],
    )
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    run_export_test(
        tmp_path / "saved_model",
        {"embed": ({"images": images}, {"embeddings": np.asarray(features)})},
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"value_range": (1, 0)}, "value_range"),
        ({"mean": (0.5,)}, "mean"),
        ({"image_size": (32,)}, "image_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LockedImageEncoder(tiny_vit(), pooling="cls", **kwargs)


def test_lock_survives_deserialisation():
    # A backbone deserialised with trainable=False still has trainable
    # variables in Keras 3.15; the encoder must freeze them for real.
    fresh = make_resnet_backbone()
    config = keras.layers.serialize(fresh)
    config["config"]["trainable"] = False
    backbone = keras.layers.deserialize(config)
    encoder = LockedImageEncoder(backbone)
    assert encoder.trainable_variables == []
    restored = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert restored.trainable_variables == []
    restored.locked = False
    assert len(restored.trainable_variables) == len(fresh.trainable_weights)
