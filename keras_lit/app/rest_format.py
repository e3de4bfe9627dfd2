"""TF Serving's REST predict format for the app's own `:predict` endpoint.

The page talks to the app exactly as it would talk to TensorFlow Serving,
so the same page works against a real server (`--serving-url`). The rules
of the format live in `keras_lit.serving.protocol`, shared with the clients
and the exporter; this module adds the app's own checks before a model
sees a request: `check_image_headers` refuses `*_bytes` inputs whose header
claims more than `max_pixels` pixels, and `check_batch` refuses requests
with more than `MAX_BATCH` values in one input.
"""

from keras_lit.image_header import read_image_header
from keras_lit.serving.protocol import ProtocolError as RestError
from keras_lit.serving.protocol import encode_predict_response  # noqa: F401
from keras_lit.serving.protocol import is_binary
from keras_lit.serving.protocol import parse_predict_request  # noqa: F401

MAX_BATCH = 4096  # Elements per input of one predict request.


def check_image_headers(inputs, max_pixels):
    """Refuses `*_bytes` images whose header claims over `max_pixels`.

    Reads only the file header (`keras_lit.image_header`), never the
    pixels, so a small file claiming a huge image (a decompression bomb) is
    refused before anything decodes it. Unknown formats pass: the model
    reports those with its own message.
    """
    for name, values in inputs.items():
        if not is_binary(name):
            continue
        for index, value in enumerate(_flatten(values)):
            if not isinstance(value, bytes):
                continue
            header = read_image_header(value)
            if header.pixels > max_pixels:
                raise RestError(
                    400,
                    f"{name}[{index}]: header claims {header.width}x"
                    f"{header.height} pixels ({header.pixels / 1e6:.1f} "
                    f"megapixels), over the app's limit of max_pixels="
                    f"{max_pixels}; refused before decoding (possible "
                    "decompression bomb)",
                )


def check_batch(inputs):
    """Refuses inputs with more than `MAX_BATCH` values in one request."""
    for name, values in inputs.items():
        if isinstance(values, list) and len(values) > MAX_BATCH:
            raise RestError(
                400,
                f"{name}: {len(values)} values in one request, over the "
                f"app's limit of {MAX_BATCH}; split the request",
            )


def _flatten(values):
    if isinstance(values, list):
        for item in values:
            yield from _flatten(item)
    else:
        yield values
