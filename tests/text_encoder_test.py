import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import CAPTIONS
from conftest import make_text_encoder
from test_case import run_layer_test
from test_case import run_model_saving_test

from keras_lit.layers import TextEncoder
from keras_lit.layers import build_word_piece_vocabulary

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red"]
BERT_VOCAB += ["blue", "circle", "square", "star", "green", "small"]


def tiny_bert_encoder(projection_dim=6, pooling="cls"):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(BERT_VOCAB),
        num_layers=1,
        num_heads=2,
        hidden_dim=4,
        intermediate_dim=8,
        max_sequence_length=16,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=BERT_VOCAB)
    return TextEncoder(backbone, tokenizer, projection_dim, pooling=pooling)


def test_vocabulary_from_captions(vocabulary):
    assert vocabulary[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    for word in ("red", "circle", "yellow", "triangle"):
        assert word in vocabulary
    with pytest.raises(ValueError, match="empty"):
        build_word_piece_vocabulary([])


def test_tokenize_packs_and_truncates(vocabulary):
    encoder = make_text_encoder(vocabulary)
    tokens = encoder.tokenize(["A Red circle!", "red " * 50])
    token_ids = tokens["token_ids"].numpy()
    mask = tokens["padding_mask"].numpy()
    assert token_ids.shape == mask.shape == (2, 16)
    cls_id, sep_id = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    red_id = vocabulary.index("red")
    # Lower-cased; [CLS] ... [SEP] then padding.
    assert token_ids[0, 0] == cls_id and token_ids[0, 2] == red_id
    assert mask[0].sum() == 6 and token_ids[0, 6:].tolist() == [0] * 10
    # Long texts are truncated, not rejected, and keep their end token.
    assert mask[1].all() and token_ids[1, -1] == sep_id
    assert (token_ids[1, 1:-1] == red_id).all()


@pytest.mark.parametrize(
    "texts,match",
    [
        ([1, 2], "must hold strings"),
        (np.zeros(3), "must hold strings"),
        ("a single string", "a batch"),
        (tf.constant([1, 2]), "dtype=int32"),
    ],
)
def test_non_string_texts(vocabulary, texts, match):
    encoder = make_text_encoder(vocabulary)
    with pytest.raises(ValueError, match=match):
        encoder.tokenize(texts)


def test_from_scratch_mean_pooling_ignores_padding(vocabulary):
    encoder = make_text_encoder(vocabulary, projection_dim=8)
    tokens = encoder.tokenize(["a red circle"])
    outputs = encoder(tokens)
    assert tuple(outputs.shape) == (1, 8)
    # Changing token ids under the padding mask does not change the output.
    ids = tokens["token_ids"].numpy().copy()
    ids[0, 6:] = 7
    noisy = {"token_ids": ids, "padding_mask": tokens["padding_mask"].numpy()}
    # Position embeddings differ per slot, but padded slots are masked in
    # attention and in the pool, so the embedding is identical.
    np.testing.assert_allclose(encoder(noisy), outputs, rtol=1e-5, atol=1e-6)


def test_bert_backbone_cls_pooling():
    encoder = tiny_bert_encoder()
    tokens = encoder.tokenize(["a red circle", "small blue star"])
    outputs = encoder(tokens)
    assert tuple(outputs.shape) == (2, 6)
    sequence = encoder.backbone(
        {
            "token_ids": tokens["token_ids"].numpy(),
            "segment_ids": np.zeros((2, 16), "int32"),
            "padding_mask": tokens["padding_mask"].numpy(),
        }
    )["sequence_output"]
    expected = encoder.projection(sequence[:, 0, :])
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)


def test_unknown_pooling(vocabulary):
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        make_text_encoder(vocabulary, pooling="avg")


def test_sentencepiece_tokenizer(tmp_path):
    import io

    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS * 20),
        model_writer=model,
        vocab_size=18,
        model_type="word",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
    )
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(
        proto=model.getvalue()
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=18,
        num_layers=1,
        num_heads=2,
        hidden_dim=4,
        intermediate_dim=8,
        max_sequence_length=16,
    )
    encoder = TextEncoder(backbone, tokenizer, 5, sequence_length=8)
    tokens = encoder.tokenize(["a red circle"])
    ids = tokens["token_ids"].numpy()[0]
    assert ids[0] == 2 and 3 in ids.tolist() and ids.shape == (8,)
    inputs = {
        "token_ids": keras.Input((8,), dtype="int32"),
        "padding_mask": keras.Input((8,), dtype="int32"),
    }
    wrapper = keras.Model(inputs, encoder(inputs))
    run_model_saving_test(wrapper, tokens, tmp_path)


def test_vocabulary_is_saved_with_the_model(vocabulary, tmp_path):
    encoder = make_text_encoder(vocabulary)
    inputs = {
        "token_ids": keras.Input((16,), dtype="int32"),
        "padding_mask": keras.Input((16,), dtype="int32"),
    }
    model = keras.Model(inputs, encoder(inputs))
    tokens = encoder.tokenize(["a green star"])
    restored = run_model_saving_test(model, tokens, tmp_path)
    restored_encoder = [
        layer for layer in restored.layers if isinstance(layer, TextEncoder)
    ][0]
    assert restored_encoder.tokenizer.get_vocabulary() == vocabulary
    np.testing.assert_array_equal(
        restored_encoder.tokenize(["a green star"])["token_ids"],
        tokens["token_ids"],
    )


def test_layer_behaviors():
    backbone = tiny_bert_encoder().backbone
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=BERT_VOCAB)
    tokens = tiny_bert_encoder().tokenize(["a red circle", "a blue star"])
    run_layer_test(
        cls=TextEncoder,
        init_kwargs={
            "backbone": backbone,
            "tokenizer": tokenizer,
            "projection_dim": 6,
            "pooling": "mean",
        },
        input_data=tokens,
        expected_output_shape=(2, 6),
        # The backbone's weights and the projection's kernel and bias; BERT's
        # pooler (unused by the pooling) is frozen.
        expected_num_trainable_weights=len(backbone.trainable_weights) + 2,
        expected_num_non_trainable_weights=2,
    )
