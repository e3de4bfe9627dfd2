"""Zero-shot class weights: prompts -> averaged, re-normalised embeddings.

The pure functions here are what both the Python evaluators and the exported
serving graph rely on, so `canonicalize_text` (Python) and
`canonicalize_text_tf` (TensorFlow ops) implement exactly the same rule:

1. lower case (full Unicode case mapping),
2. underscores, hyphens/dashes (Unicode `Pc`, `Pd`) and `/` become spaces,
3. every other punctuation character (Unicode `P*`, plus the ASCII symbols
   of Python's `string.punctuation`: `$+<=>^`|~`) is deleted, so
   "Grevy's zebra" -> "grevys zebra",
4. runs of whitespace (ASCII and Unicode `Z*`) collapse to one space, and
   leading/trailing spaces are removed.

This follows big_vision's `_canonicalize` (lower case, punctuation stripped),
except that word-joining punctuation becomes a space: "t-shirt" ->
"t shirt" keeps two known words instead of an unknown "tshirt".
"""

import inspect
import string
import unicodedata
import warnings

import numpy as np

# ASCII characters of `string.punctuation` that Unicode files as symbols
# (`S*`) rather than punctuation (`P*`).
_ASCII_SYMBOLS = "".join(
    c for c in string.punctuation if not unicodedata.category(c).startswith("P")
)
_SPACE_CONTROLS = "\t\n\x0b\x0c\r"

# The same rule as RE2 patterns, for `tf.strings.regex_replace`.
_TF_TO_SPACE = r"[\p{Pc}\p{Pd}/]"
_TF_DELETE = r"[\p{P}" + "".join("\\" + c for c in _ASCII_SYMBOLS) + "]"
_TF_WHITESPACE = r"[\t\n\x0b\x0c\r\p{Z}]+"

TEMPLATE_PLACEHOLDER = "{}"


def _char_rule(char):
    category = unicodedata.category(char)
    if category in ("Pc", "Pd") or char == "/":
        return " "
    if category.startswith("P") or char in _ASCII_SYMBOLS:
        return ""
    if category.startswith("Z") or char in _SPACE_CONTROLS:
        return " "
    return char


def as_text(value, expected):
    """`value` as `str` (UTF-8 `bytes` decoded), else a `ValueError`.

    The error reads `"<expected>. Received: <type> value <value>"`.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(
            f"{expected}. Received: {type(value).__name__} value {value!r}"
        )
    return value


def canonicalize_text(text):
    """Lower-cases `text`, strips punctuation and collapses whitespace.

    Args:
        text: a `str` (or UTF-8 `bytes`).

    Returns:
        The canonical `str`. See the module docstring for the exact rule;
        `canonicalize_text_tf` gives the same result in TensorFlow.

    Example:
    >>> canonicalize_text("  A photo of a Jack-o'-lantern. ")
    'a photo of a jack o lantern'
    """
    text = as_text(text, "`text` must be a string")
    text = "".join(_char_rule(char) for char in text.lower())
    return " ".join(part for part in text.split(" ") if part)


def canonicalize_text_tf(text):
    """`canonicalize_text` in TensorFlow ops, for `tf.data` and SavedModels.

    Args:
        text: a string tensor of any shape (UTF-8).

    Returns:
        A string tensor of the same shape.

    Example:
    >>> canonicalize_text_tf(tf.constant(["Grevy's  Zebra!"]))  # doctest: +SKIP
    <tf.Tensor: ... numpy=array([b'grevys zebra'], dtype=object)>
    """
    import tensorflow as tf

    text = tf.convert_to_tensor(text)
    if text.dtype != tf.string:
        raise ValueError(
            "`text` must be a string tensor. "
            f"Received: text with dtype={text.dtype.name}"
        )
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _TF_TO_SPACE, " ")
    text = tf.strings.regex_replace(text, _TF_DELETE, "")
    text = tf.strings.regex_replace(text, _TF_WHITESPACE, " ")
    return tf.strings.regex_replace(text, r"^ | $", "")


def validate_class_names(class_names):
    """Returns `class_names` as a list of `str`; warns about duplicates.

    Duplicates are checked after canonicalisation ("Crane" and "crane." are
    the same prompt, hence the same class weights).
    """
    if isinstance(class_names, (str, bytes)):
        raise ValueError(
            "`class_names` must be a list of strings, not a single string. "
            f"Received: class_names={class_names!r}"
        )
    if class_names is None:
        raise ValueError("`class_names` must be a non-empty list of strings.")
    names = []
    for name in list(class_names):
        names.append(as_text(name, "`class_names` must hold strings"))
    if not names:
        raise ValueError(
            "`class_names` must be a non-empty list of strings. "
            "Received: class_names=[]"
        )
    empty = [name for name in names if not canonicalize_text(name)]
    if empty:
        raise ValueError(
            "Every class name must contain a word once punctuation is "
            f"stripped. Received: {empty[0]!r}"
        )
    seen = {}
    duplicates = []
    for name in names:
        key = canonicalize_text(name)
        if key in seen:
            duplicates.append(f"{seen[key]!r} and {name!r}")
        else:
            seen[key] = name
    if duplicates:
        warnings.warn(
            "`class_names` holds duplicates after canonicalisation; they get "
            "identical weights and can never be told apart: "
            + ", ".join(duplicates[:5])
            + (
                f" (and {len(duplicates) - 5} more)"
                if len(duplicates) > 5
                else ""
            ),
            UserWarning,
            stacklevel=3,
        )
    return names


def validate_templates(templates):
    """Returns `templates` as a list of `str` that each contain `{}`."""
    if isinstance(templates, (str, bytes)):
        raise ValueError(
            "`templates` must be a list of strings such as "
            "['a photo of a {}.'], or a prompt-set name from "
            "`keras_lit.zero_shot.PROMPT_SETS`. "
            f"Received: templates={templates!r}"
        )
    templates = list(templates)
    if not templates:
        raise ValueError(
            "`templates` must be a non-empty list of strings. "
            "Received: templates=[]"
        )
    for template in templates:
        if not isinstance(template, str):
            raise ValueError(
                "`templates` must hold strings. Received: "
                f"{type(template).__name__} value {template!r}"
            )
        if TEMPLATE_PLACEHOLDER not in template:
            raise ValueError(
                "Every template must contain '{}' where the class name goes. "
                f"Received: template={template!r}"
            )
    return templates


def format_prompts(class_names, templates, canonicalize=True):
    """All prompts, class-major: `[c0 t0, c0 t1, ..., c1 t0, ...]`.

    Args:
        class_names: list of `K` class names.
        templates: list of `T` templates, each containing `{}`.
        canonicalize: bool. Apply `canonicalize_text` to each prompt (after
            filling in the class name). Defaults to `True`.

    Returns:
        A list of `K * T` strings; prompt `k * T + t` is class `k`, template
        `t`.

    Example:
    >>> format_prompts(["Cat", "Dog"], ["a photo of a {}.", "a {} toy."])
    ['a photo of a cat', 'a cat toy', 'a photo of a dog', 'a dog toy']
    """
    class_names = validate_class_names(class_names)
    templates = validate_templates(templates)
    prompts = [
        template.replace(TEMPLATE_PLACEHOLDER, name)
        for name in class_names
        for template in templates
    ]
    if canonicalize:
        prompts = [canonicalize_text(prompt) for prompt in prompts]
    return prompts


def l2_normalize(x, axis=-1, epsilon=1e-12):
    """Numpy L2 normalisation; a zero vector stays zero (no NaN)."""
    x = np.asarray(x, dtype="float32")
    norm = np.sqrt(np.sum(np.square(x), axis=axis, keepdims=True))
    return x / np.maximum(norm, epsilon)


def build_zero_shot_weights(
    model,
    class_names,
    templates=None,
    batch_size=256,
    verbose="auto",
    canonicalize=True,
    chunk_size=4096,
):
    """Class weights `[K, D]` from a prompt ensemble, as CLIP and LiT do.

    For each class, every template is filled with the class name, the text
    tower embeds the prompts, each embedding is L2-normalised, the `T`
    embeddings are averaged, and the mean is **re-normalised** (a mean of
    unit vectors is shorter than 1). Prompts are encoded in chunks and summed
    into a `[K, D]` accumulator, so memory stays bounded by
    `K * D + chunk_size * D` floats however many templates there are.

    Args:
        model: a `LiTModel`, or any object with
            `encode_texts(list_of_str) -> [N, D]`.
        class_names: list of `K` class names.
        templates: list of templates containing `{}`, or a prompt-set name
            (see `keras_lit.zero_shot.PROMPT_SETS`). Defaults to CLIP's 7
            best ImageNet templates (`"clip_best_7"`).
        batch_size: int. Prompts per text-tower batch. Defaults to `256`.
        verbose: `"auto"`, `0` or `1`. Progress bar; `"auto"` shows one only
            when there are more than two chunks.
        canonicalize: bool. Canonicalise the prompts (lower case, no
            punctuation). Defaults to `True`.
        chunk_size: int. Prompts per `encode_texts` call (each call sets up
            a `tf.data` pipeline, so few large chunks are faster; memory
            grows with it). Defaults to `4096`.

    Returns:
        float32 numpy array `[K, D]` with unit rows.

    Example:
    >>> weights = build_zero_shot_weights(
    ...     model, ["cat", "dog"], ["a photo of a {}."])  # doctest: +SKIP
    >>> weights.shape  # doctest: +SKIP
    (2, 256)
    """
    from keras_lit.zero_shot.prompts import resolve_templates

    templates = resolve_templates(templates)
    prompts = format_prompts(class_names, templates, canonicalize)
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{name}` must be a positive int. Received: {name}={value!r}"
            )
    if verbose not in ("auto", 0, 1, True, False):
        raise ValueError(
            f"`verbose` must be 'auto', 0 or 1. Received: verbose={verbose!r}"
        )
    encode = encoder_function(model, "encode_texts", batch_size)
    starts = range(0, len(prompts), chunk_size)
    show = len(starts) > 2 if verbose == "auto" else bool(verbose)
    with _progress(len(prompts), show) as bar:

        def embedded_chunks():
            for start in starts:
                chunk = prompts[start : start + chunk_size]
                embeddings = np.asarray(encode(chunk))
                if embeddings.ndim != 2 or embeddings.shape[0] != len(chunk):
                    raise ValueError(
                        "`model.encode_texts` must return one embedding row "
                        f"per text. Received shape {embeddings.shape} for "
                        f"{len(chunk)} texts."
                    )
                bar.update(len(chunk))
                yield embeddings

        return average_prompt_embeddings(embedded_chunks(), len(templates))


def average_prompt_embeddings(prompt_embeddings, num_templates):
    """Per class: mean of unit prompt embeddings, then re-normalised.

    Args:
        prompt_embeddings: a `[K * T, D]` array, or an iterable of
            `[n_i, D]` chunks of it, in class-major order (as
            `format_prompts` returns them). Chunks are summed into a `[K, D]`
            accumulator, so the full `[K * T, D]` array never has to exist.
        num_templates: int `T`.

    Returns:
        float32 `[K, D]` with unit rows: `normalize(mean_t normalize(e_kt))`.
    """
    if isinstance(prompt_embeddings, np.ndarray):
        prompt_embeddings = [prompt_embeddings]
    sums = {}
    count = 0
    for chunk in prompt_embeddings:
        if len(chunk) == 0:
            continue
        chunk = l2_normalize(chunk).astype("float64")
        class_ids = np.arange(count, count + len(chunk)) // num_templates
        # Class-major order: each class is one contiguous run of rows.
        ids, starts = np.unique(class_ids, return_index=True)
        for class_id, total in zip(ids, np.add.reduceat(chunk, starts)):
            sums[class_id] = sums.get(class_id, 0.0) + total
        count += len(chunk)
    if not count or count % num_templates:
        raise ValueError(
            "Expected a whole number of classes of "
            f"{num_templates} prompt embeddings each. Received: {count} rows"
        )
    stacked = np.stack([sums[k] for k in range(count // num_templates)])
    return l2_normalize(stacked / num_templates).astype("float32")


def format_prompts_tf(class_names, templates):
    """`format_prompts` in TensorFlow ops, for the exported graph.

    Args:
        class_names: a `[K]` string tensor.
        templates: a list of `T` Python templates, each containing `{}`.

    Returns:
        A `[K * T]` string tensor, class-major and canonicalised, exactly as
        `format_prompts(..., canonicalize=True)` orders them.
    """
    import tensorflow as tf

    prompts = []
    for template in validate_templates(templates):
        parts = template.split(TEMPLATE_PLACEHOLDER)
        pieces = [parts[0]]
        for part in parts[1:]:
            pieces += [class_names, part]
        prompts.append(tf.strings.join(pieces))
    prompts = tf.reshape(tf.stack(prompts, axis=1), [-1])  # Class-major.
    return canonicalize_text_tf(prompts)


def average_prompt_embeddings_tf(prompt_embeddings, num_templates):
    """`average_prompt_embeddings` in TensorFlow ops: `[K * T, D] -> [K, D]`.

    Normalises each prompt embedding, averages each class's `T` rows and
    normalises the mean again.
    """
    import tensorflow as tf

    embeddings = tf.math.l2_normalize(prompt_embeddings, axis=-1)
    width = tf.shape(embeddings)[-1]
    embeddings = tf.reshape(embeddings, [-1, num_templates, width])
    return tf.math.l2_normalize(tf.reduce_mean(embeddings, axis=1), axis=-1)


def encoder_function(model, method, batch_size):
    """`model.<method>` with `batch_size` bound when it accepts one."""
    function = getattr(model, method, None)
    if not callable(function):
        raise ValueError(
            f"`model` must have an `{method}` method, as `LiTModel` does. "
            f"Received: {type(model).__name__}"
        )
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "batch_size" in parameters:
        return lambda inputs: function(inputs, batch_size=batch_size)
    return function


class _progress:
    """A tqdm bar, or a no-op when hidden."""

    def __init__(self, total, show):
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="Zero-shot prompts", unit="text")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)
