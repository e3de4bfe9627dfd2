"""`TransformerBlock` against KerasHub's pre-norm `TransformerEncoder`."""

import keras
import keras_hub
import numpy as np
import pytest

from keras_lit.layers import TransformerBlock
from keras_lit.layers import TransformerTextBackbone

HIDDEN, HEADS, INTERMEDIATE = 8, 2, 16


def copy_weights(reference, block):
    """KerasHub's q/k/v/output einsum kernels -> the fused block's."""
    attention = reference._self_attention_layer
    dense = [attention.query_dense, attention.key_dense, attention.value_dense]
    block.qkv_dense.kernel.assign(
        np.concatenate(
            [d.kernel.numpy().reshape(HIDDEN, HIDDEN) for d in dense], axis=1
        )
    )
    block.qkv_dense.bias.assign(
        np.concatenate([d.bias.numpy().reshape(HIDDEN) for d in dense])
    )
    output = attention.output_dense
    block.attention_output_dense.kernel.assign(
        output.kernel.numpy().reshape(HIDDEN, HIDDEN)
    )
    block.attention_output_dense.bias.assign(output.bias.numpy())
    pairs = [
        (reference._self_attention_layer_norm, block.attention_norm),
        (reference._feedforward_layer_norm, block.feedforward_norm),
        (reference._feedforward_intermediate_dense, block.intermediate_dense),
        (reference._feedforward_output_dense, block.output_dense),
    ]
    for source, target in pairs:
        target.set_weights(source.get_weights())


@pytest.fixture
def pair():
    keras.utils.set_random_seed(3)
    reference = keras_hub.layers.TransformerEncoder(
        INTERMEDIATE, HEADS, normalize_first=True
    )
    block = TransformerBlock(num_heads=HEADS, intermediate_dim=INTERMEDIATE)
    x = np.random.default_rng(0).normal(size=(3, 5, HIDDEN)).astype("float32")
    reference(x)
    block(x)
    # Non-zero biases and norm parameters, so each is checked.
    for weight in reference.weights:
        values = np.random.default_rng(len(weight.path)).normal(
            scale=0.3, size=weight.shape
        )
        weight.assign(weight.numpy() + values.astype("float32"))
    copy_weights(reference, block)
    return reference, block, x


def test_matches_keras_hub_transformer_encoder(pair):
    reference, block, x = pair
    mask = np.array([[1] * 5, [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(
        block(x, padding_mask=mask),
        reference(x, padding_mask=mask),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(block(x), reference(x), rtol=1e-5, atol=1e-5)


def test_padded_positions_do_not_change_real_tokens(pair):
    _, block, x = pair
    mask = np.array([[1, 1, 1, 0, 0]] * 3, "int32")
    changed = x.copy()
    changed[:, 3:] += 100.0
    np.testing.assert_allclose(
        block(x, padding_mask=mask)[:, :3],
        block(changed, padding_mask=mask)[:, :3],
        rtol=1e-5,
        atol=1e-5,
    )


def test_bad_head_count_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        TransformerBlock(num_heads=3, intermediate_dim=4)(np.ones((1, 2, 8)))
    backbone = TransformerTextBackbone(
        vocabulary_size=20,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=6,
    )
    inputs = {
        "token_ids": np.array([[2, 5, 7, 3, 0, 0]], "int32"),
        "padding_mask": np.array([[1, 1, 1, 1, 0, 0]], "int32"),
    }
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(backbone(inputs), restored(inputs))
    assert restored.get_layer("transformer_layer_1").intermediate_dim == 16
