"""The two towers of `keras-lit train`, built from the config's sections."""

from keras_lit.cli.common import CLIError
from keras_lit.cli.common import existing_path
from keras_lit.cli.common import log

# The config keys of a from-scratch text tower (`TextEncoder.from_scratch`).
SCRATCH_TOWER_KEYS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "sequence_length",
    "pooling",
)


def build_image_encoder(tower):
    """A `LockedImageEncoder` from the `image_tower` config section."""
    import keras

    from keras_lit.layers import LockedImageEncoder
    from keras_lit.models import LiTModel

    image_size = tuple(tower["image_size"]) if tower["image_size"] else None
    options = dict(
        pooling=tower["pooling"],
        head_dim=tower["head_dim"],
        locked=tower["locked"],
    )
    source = tower["source"]
    if source == "keras_cv":
        backbone = _keras_cv_backbone(tower, image_size)
        return LockedImageEncoder(
            backbone,
            value_range=tuple(tower["value_range"]),
            image_size=image_size,
            **options,
        )
    if source == "keras_file":
        path = existing_path(tower["keras_file"], "image_tower.keras_file")
        loaded = keras.saving.load_model(path, compile=False)
        if isinstance(loaded, LiTModel):
            return loaded.image_encoder
        if isinstance(loaded, LockedImageEncoder):
            return loaded
        return LockedImageEncoder(
            loaded,
            value_range=tuple(tower["value_range"]),
            image_size=image_size,
            **options,
        )
    if source == "preset":
        if not tower["preset"]:
            raise CLIError("image_tower.preset must name a preset.")
        return LockedImageEncoder.from_preset(tower["preset"], **options)
    raise CLIError(
        "image_tower.source must be 'keras_cv', 'keras_file' or 'preset'. "
        f"Received: {source!r}"
    )


def _keras_cv_backbone(tower, image_size):
    import keras_cv

    name = tower["keras_cv_class"]
    backbone_class = getattr(keras_cv.models, str(name), None)
    if backbone_class is None or not name.endswith("Backbone"):
        known = sorted(
            n for n in dir(keras_cv.models) if n.endswith("Backbone")
        )
        raise CLIError(
            f"Unknown image tower keras_cv_class={name!r}. Known KerasCV "
            f"backbones: {', '.join(known[:12])}, ..."
        )
    if image_size is None:
        raise CLIError("image_tower.image_size is required for keras_cv.")
    return backbone_class(
        input_shape=(*image_size, 3), **tower["keras_cv_args"]
    )


def build_text_encoder(tower, projection_dim, captions):
    """A `TextEncoder` from the `text_tower` config section."""
    from keras_lit.layers import TextEncoder
    from keras_lit.layers import build_word_piece_vocabulary

    source = tower["source"]
    if source == "scratch":
        log(f"Learning a WordPiece vocabulary from {len(captions)} captions")
        vocabulary = build_word_piece_vocabulary(
            captions, vocabulary_size=tower["vocabulary_size"]
        )
        shape = {key: tower[key] for key in SCRATCH_TOWER_KEYS}
        return TextEncoder.from_scratch(vocabulary, projection_dim, **shape)
    if source == "preset":
        if not tower["preset"]:
            raise CLIError("text_tower.preset must name a preset.")
        return TextEncoder.from_preset(
            tower["preset"],
            projection_dim=projection_dim,
            sequence_length=tower["sequence_length"],
        )
    raise CLIError(
        f"text_tower.source must be 'scratch' or 'preset'. Received: {source!r}"
    )
