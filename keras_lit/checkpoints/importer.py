"""Google's LiT `.npz` checkpoints -> `LiTModel`s and LiT presets."""

import glob
import os

from keras_lit.checkpoints import published
from keras_lit.checkpoints.architecture import infer_architecture
from keras_lit.checkpoints.builder import build_lit_model
from keras_lit.checkpoints.builder import temperature_of
from keras_lit.checkpoints.reader import read_checkpoint
from keras_lit.checkpoints.tokenizers import load_tokenizer
from keras_lit.checkpoints.weight_map import assign_weights
from keras_lit.checkpoints.weight_map import check_keys
from keras_lit.checkpoints.weight_map import weight_map

VOCABULARY_SUFFIXES = (".txt", ".model")


def is_lit_checkpoint(preset):
    """Whether `preset` names a released LiT model or a LiT `.npz`.

    True for the names in `PUBLISHED_MODELS`, for paths ending in `.npz`,
    and for directories holding a `.npz` but no `config.json`.
    """
    if isinstance(preset, os.PathLike):
        preset = os.fspath(preset)
    if not isinstance(preset, str):
        return False
    if published.is_published_name(preset):
        return True
    path = os.path.expanduser(preset)
    if path.endswith(".npz"):
        return True
    return (
        os.path.isdir(path)
        and not os.path.exists(os.path.join(path, "config.json"))
        and bool(glob.glob(os.path.join(path, "*.npz")))
    )


def load_lit_checkpoint(
    checkpoint,
    cls,
    vocabulary=None,
    text_num_heads=None,
    load_weights=True,
):
    """A `cls` (`LiTModel`) holding a Google LiT checkpoint.

    The towers are built from library parts to match the original code
    exactly (see `keras_lit.checkpoints.builder`), and `model.preprocessor`
    tokenises and preprocesses as Google's LiT code does, so
    `encode_images`, `encode_texts`, zero-shot evaluation and
    `export_for_serving(..., resize="stretch")` give the original numbers
    on raw images and strings.

    Args:
        checkpoint: the name of a released model (`"lit_b16b_2"`, ...; see
            `PUBLISHED_MODELS`), the path of a LiT `.npz`, or a directory
            holding one `.npz` and its vocabulary.
        cls: the model class to build (`keras_lit.models.LiTModel`).
        vocabulary: path of the WordPiece `.txt` (BERT towers) or the
            SentencePiece `.model` (L16S/L16Ti). Defaults to the file next
            to the `.npz` with the same name.
        text_num_heads: heads of a BERT text tower (not stored in the
            file). Defaults to the released model's, else `width // 64`.
        load_weights: bool. `False` keeps random weights (the file is still
            read, for its shapes).
    """
    if published.is_published_name(checkpoint):
        spec = published.PUBLISHED_MODELS[checkpoint]
        path, default_vocabulary = published.published_files(checkpoint)
        if text_num_heads is None:
            text_num_heads = spec["text_num_heads"]
    else:
        path = _checkpoint_path(checkpoint)
        default_vocabulary = None
    vocabulary = vocabulary or default_vocabulary or _vocabulary_path(path)
    params = read_checkpoint(path)
    source = f"LiT checkpoint {os.path.basename(path)!r}"
    architecture = _architecture(params, text_num_heads, source)
    tokenizer, packing = load_tokenizer(
        vocabulary, architecture["text"]["kind"]
    )
    _check_vocabulary(tokenizer, architecture, vocabulary)
    model = build_lit_model(
        cls,
        architecture,
        tokenizer,
        packing,
        temperature=temperature_of(params["t"].reshape(-1)[0])
        if "t" in params
        else 10.0,
    )
    entries = weight_map(model, architecture)
    if load_weights:
        assign_weights(params, entries, source)
    else:
        check_keys({k: v.shape for k, v in params.items()}, entries, source)
    return model


def import_checkpoint(
    checkpoint, preset_dir, cls, vocabulary=None, text_num_heads=None
):
    """Converts a LiT checkpoint into a LiT preset directory; returns it.

    The preset (`config.json`, `model.weights.h5`, the tokenizer and
    `metadata.json`) loads with `LiTModel.from_preset(preset_dir)` and
    exports with `keras-lit export`.
    """
    model = load_lit_checkpoint(
        checkpoint,
        cls=cls,
        vocabulary=vocabulary,
        text_num_heads=text_num_heads,
    )
    model.save_to_preset(preset_dir)
    return preset_dir


def _architecture(params, text_num_heads, source):
    try:
        return infer_architecture(
            {key: value.shape for key, value in params.items()},
            text_num_heads=text_num_heads,
        )
    except ValueError as error:
        message = str(error).replace("LiT checkpoint", source, 1)
        raise ValueError(message) from None


def _checkpoint_path(checkpoint):
    path = os.path.expanduser(os.fspath(checkpoint))
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.npz")))
        if len(found) != 1:
            raise ValueError(
                f"Expected one LiT .npz in {checkpoint!r}. Found "
                f"{len(found)}: {[os.path.basename(f) for f in found]}"
            )
        return found[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LiT checkpoint not found: {checkpoint!r}")
    return path


def _vocabulary_path(path):
    stem = path[: -len(".npz")] if path.endswith(".npz") else path
    for suffix in VOCABULARY_SUFFIXES:
        if os.path.isfile(stem + suffix):
            return stem + suffix
    directory = os.path.dirname(path)
    found = [
        file
        for suffix in VOCABULARY_SUFFIXES
        for file in glob.glob(os.path.join(directory, "*" + suffix))
    ]
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(
        f"No vocabulary for LiT checkpoint {path!r}: expected "
        f"{os.path.basename(stem)}.txt (BERT towers) or .model "
        "(SentencePiece) next to it; pass `vocabulary=`"
    )


def _check_vocabulary(tokenizer, architecture, vocabulary):
    size = int(tokenizer.vocabulary_size())
    rows = architecture["text"]["vocabulary_size"]
    if size > rows:
        raise ValueError(
            f"Vocabulary {os.path.basename(vocabulary)!r} has {size} tokens "
            f"but the checkpoint embeds only {rows}: it belongs to another "
            "model"
        )
