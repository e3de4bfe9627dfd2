"""Checks on `[K]` string inputs (`texts`, `class_names`), as TF ops.

In order: not an empty batch, (for class names) at most `max_count` names,
every string within `max_text_bytes`, (for class names) at most
`max_total_bytes` bytes in all,
valid UTF-8, and (for class names) a word left after canonicalisation. Each
check runs only once the previous ones passed, so a 100 kB string is
refused on its length before any regex or tokenizer touches it.
"""

import tensorflow as tf

from keras_lit.export.image_checks import checked
from keras_lit.zero_shot.weights import canonicalize_text_tf


def check_texts(
    texts,
    name,
    max_text_bytes,
    sequence_length,
    allow_empty_strings,
    max_count=None,
    max_total_bytes=None,
):
    """Asserts on a `[K]` string input; returns it behind the checks.

    `max_count` and `max_total_bytes` (the export's `max_class_names` and
    `max_class_names_bytes`) bound the work of one `zero_shot` call: each
    name is embedded once per template. They read only the shape and the
    lengths, before any regex or tokenizer, so 10,000 names are refused in
    milliseconds.
    """
    text_checks = TextChecks(texts, name, max_text_bytes, sequence_length)
    checks = [text_checks.not_empty]
    if max_count is not None:
        checks.append(lambda: text_checks.few_enough(max_count))
    if max_text_bytes is not None:
        checks.append(text_checks.short_enough)
    if max_total_bytes is not None:
        checks.append(lambda: text_checks.small_enough(max_total_bytes))
    checks.append(text_checks.valid_utf8)
    if not allow_empty_strings:
        checks.append(text_checks.has_words)
    return checked(checks, lambda: tf.identity(texts))


class TextChecks:
    """The checks on one string input; each returns `(condition, message)`."""

    def __init__(self, texts, name, max_text_bytes, sequence_length):
        self.texts = texts
        self.name = name
        self.noun = "text" if name == "texts" else "class name"
        self.max_text_bytes = max_text_bytes
        self.sequence_length = sequence_length

    def not_empty(self):
        empty = "empty batch" if self.name == "texts" else "empty list"
        return (
            tf.size(self.texts) > 0,
            tf.constant(f"{self.name}: {empty}; send at least one {self.noun}"),
        )

    def few_enough(self, max_count):
        count = tf.size(self.texts)
        return (
            count <= max_count,
            tf.strings.format(
                self.name + ": {} names, over the limit of max_class_names="
                f"{max_count} set at export (each name is embedded once per "
                "template); send fewer",
                (count,),
            ),
        )

    def small_enough(self, max_total_bytes):
        total = tf.reduce_sum(tf.strings.length(self.texts))
        return (
            total <= max_total_bytes,
            tf.strings.format(
                self.name + ": {} bytes in all names, over the limit of "
                f"max_class_names_bytes={max_total_bytes} set at export; "
                "send fewer or shorter names",
                (total,),
            ),
        )

    def short_enough(self):
        lengths = tf.strings.length(self.texts)
        too_long = lengths > self.max_text_bytes
        index = _first(too_long)
        return (
            tf.logical_not(tf.reduce_any(too_long)),
            tf.strings.format(
                self.name + "[{}]: {} bytes, over the limit of "
                "max_text_bytes={} set at export (only the first {} "
                "tokens are used); shorten the " + self.noun,
                (
                    index,
                    tf.gather(lengths, index),
                    self.max_text_bytes,
                    self.sequence_length,
                ),
            ),
        )

    def valid_utf8(self):
        # Invalid UTF-8 would fail inside the tokenizer without a name.
        valid = tf.equal(
            tf.strings.unicode_transcode(
                self.texts, "UTF-8", "UTF-8", errors="ignore"
            ),
            self.texts,
        )
        return (
            tf.reduce_all(valid),
            tf.strings.format(
                self.name + "[{}]: not valid UTF-8 text",
                _first(tf.logical_not(valid)),
            ),
        )

    def has_words(self):
        empty = tf.equal(canonicalize_text_tf(self.texts), "")
        return (
            tf.logical_not(tf.reduce_any(empty)),
            tf.strings.format(
                self.name + "[{}]: no words left once lower-cased and "
                "stripped of punctuation; send a real " + self.noun,
                _first(empty),
            ),
        )


def _first(failed):
    """The index of the first `True` (0 when none is)."""
    return tf.argmax(tf.cast(failed, tf.int32), output_type=tf.int32)
