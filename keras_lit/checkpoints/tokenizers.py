"""The tokenisation of Google's LiT models as KerasHub tokenizers.

- BERT towers (B16B_2, L16L, B16B): `tensorflow_text.BertTokenizer(vocab,
  lower_case=True)`: lower-case, strip accents, split punctuation and CJK
  characters, WordPiece with `##` continuations and `[UNK]`. Then at most 15
  word-pieces, `[CLS]` prepended, zero-padded to 16; no `[SEP]`.
  -> `WordPieceTokenizer(lowercase=True, strip_accents=True)` and a packer
  with `start=[CLS]`, no end token, `pad=0`.
- Text-transformer towers (L16S, L16Ti): `SentencepieceTokenizer(model,
  add_eos=True)`, cut to 15 ids and padded with the `</s>` id to 16, so the
  last token is always `</s>`. -> `SentencePieceTokenizer` and a packer with
  no start token, `end=pad=</s>` (it keeps at most 15 pieces, then `</s>`:
  the same ids).
"""

import os

import keras_hub


def load_tokenizer(path, kind):
    """`(tokenizer, packing)` for a vocabulary file and a text tower kind.

    Args:
        path: a WordPiece vocabulary `.txt` (one token per line) for a BERT
            tower, or a SentencePiece `.model` for a text transformer.
        kind: `"bert"` or `"transformer"` (see `infer_architecture`).

    Returns:
        The KerasHub tokenizer, and `{"start_token_id", "end_token_id",
        "pad_token_id"}` for `keras_lit.layers.TextEncoder`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LiT vocabulary file not found: {path!r}")
    if kind == "bert":
        return _word_piece(path)
    return _sentence_piece(path)


def _word_piece(path):
    try:
        with open(path, encoding="utf-8") as file:
            vocabulary = [line.rstrip("\r\n") for line in file]
    except UnicodeDecodeError:
        raise ValueError(
            f"{path!r} is not a WordPiece vocabulary (UTF-8 text, one token "
            "per line); the BERT text tower of this checkpoint needs one"
        ) from None
    if "[CLS]" not in vocabulary:
        raise ValueError(
            f"WordPiece vocabulary {path!r} has no '[CLS]' token; the BERT "
            "text tower of this checkpoint needs its .txt vocabulary"
        )
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary,
        lowercase=True,
        strip_accents=True,
        split_on_cjk=True,
        oov_token="[UNK]",
    )
    packing = {
        "start_token_id": vocabulary.index("[CLS]"),
        "end_token_id": None,
        "pad_token_id": 0,
    }
    return tokenizer, packing


def _sentence_piece(path):
    import tensorflow as tf
    import tensorflow_text

    with open(path, "rb") as file:
        proto = file.read()
    try:
        # The id `add_eos=True` appends, read from the model itself.
        reference = tensorflow_text.SentencepieceTokenizer(
            model=proto, add_eos=True
        )
        eos_id = int(reference.tokenize(tf.constant([""]))[0][-1])
    except (tf.errors.InternalError, tf.errors.InvalidArgumentError):
        raise ValueError(
            f"{path!r} is not a SentencePiece model; the text transformer "
            "tower of this checkpoint needs its .model file"
        ) from None
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)
    packing = {
        "start_token_id": None,
        "end_token_id": eos_id,
        "pad_token_id": eos_id,
    }
    return tokenizer, packing
