"""Google's released LiT models: names, files and their download.

`LiTModel.from_preset("lit_b16b_2")` downloads `LiT-B16B_2.npz` and its
vocabulary from `gs://vit_models/lit/` (over HTTPS) into
`$KERAS_HOME/keras_lit/lit/` (`~/.keras/...`) on first use; later loads
read the cached files. Without network, and with nothing cached, loading
fails with a one-line `keras_lit.presets.PresetNetworkError`.
"""

import os

from keras_lit import presets

BASE_URL = "https://storage.googleapis.com/vit_models/lit/"
CACHE_SUBDIR = os.path.join("keras_lit", "lit")

PUBLISHED_MODELS = {
    "lit_b16b_2": {
        "file": "LiT-B16B_2",
        "vocabulary": "LiT-B16B_2.txt",
        "text_num_heads": 12,
        "description": (
            "ViT-B/16 + BERT-Base, 196M parameters (Google's LiT-B16B_2, "
            "the model card's B16B)."
        ),
    },
    "lit_l16l": {
        "file": "LiT-L16L",
        "vocabulary": "LiT-L16L.txt",
        "text_num_heads": 16,
        "description": "ViT-L/16 + BERT-Large, 638M parameters (LiT-L16L).",
    },
    "lit_l16s": {
        "file": "LiT-L16S",
        "vocabulary": "LiT-L16S.model",
        "text_num_heads": None,
        "description": (
            "ViT-L/16 + a small text transformer (width 384, SentencePiece): "
            "LiT-L16S."
        ),
    },
    "lit_l16ti": {
        "file": "LiT-L16Ti",
        "vocabulary": "LiT-L16Ti.model",
        "text_num_heads": None,
        "description": (
            "ViT-L/16 + a tiny text transformer (width 192, SentencePiece): "
            "LiT-L16Ti."
        ),
    },
    "lit_b16b": {
        "file": "LiT-B16B",
        "vocabulary": "LiT-B16B.txt",
        "text_num_heads": 12,
        "description": (
            "The older LiT-B16B: B16B_2 plus a 768x768 image head."
        ),
    },
}


def list_published_models():
    """Names of Google's released LiT models that `from_preset` takes."""
    return sorted(PUBLISHED_MODELS)


def is_published_name(preset):
    return isinstance(preset, str) and preset in PUBLISHED_MODELS


def cache_directory():
    """Where downloaded LiT files are kept (`$KERAS_HOME/keras_lit/lit`)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    return os.path.join(home, CACHE_SUBDIR)


def published_files(name):
    """`(checkpoint_path, vocabulary_path)` of a released model.

    Downloads the files that are not cached yet. Raises
    `PresetNetworkError` (one line) when that needs a network there is not.
    """
    spec = PUBLISHED_MODELS[name]
    files = [spec["file"] + ".npz", spec["vocabulary"]]
    directory = cache_directory()
    paths = [os.path.join(directory, file) for file in files]
    missing = [f for f, path in zip(files, paths) if not os.path.exists(path)]
    if not missing:
        return tuple(paths)
    host, service = presets.HOSTS["gs"]
    if not presets.network_available(host):
        reason = (
            f"{presets.OFFLINE_ENV} is set"
            if presets.offline_forced()
            else "there is no network connection"
        )
        raise presets.PresetNetworkError(
            f"Cannot load preset {name!r}: its files ({', '.join(files)}) "
            f"are downloaded from {service} ({host}) and {reason}. Pass the "
            "path of a local .npz (its vocabulary next to it) or of a "
            f"directory holding both, or copy them into {directory}."
        )
    import keras

    try:
        for file in missing:
            keras.utils.get_file(
                fname=file,
                origin=BASE_URL + file,
                cache_dir=os.path.dirname(os.path.dirname(directory)),
                cache_subdir=CACHE_SUBDIR,
            )
    except Exception as error:
        if presets.is_network_error(error):
            raise presets.PresetNetworkError(
                f"Cannot load preset {name!r}: downloading its files from "
                f"{service} ({host}) failed for lack of network."
            ) from None
        raise
    return tuple(paths)
