"""TF Serving's REST predict format for the app's own `:predict` endpoint.

The page talks to the app exactly as it would talk to TensorFlow Serving,
so the same page works against a real server (`--serving-url`). The rules
of the format live in `keras_lit.serving.protocol`, shared with the clients
and the exporter; this module adds the app's own checks before a model
sees a request: `check_image_headers` refuses `*_bytes` inputs whose header
claims more than `max_pixels` pixels, and `check_batch` refuses requests
with more than `MAX_BATCH` values in one input.
"""

from keras_lit.image_frames import frame_problem
from keras_lit.image_header import read_image_header
from keras_lit.image_structure import jpeg_structure_ok
from keras_lit.image_structure import png_structure_ok
from keras_lit.serving.protocol import ProtocolError as RestError
from keras_lit.serving.protocol import encode_predict_response  # noqa: F401
from keras_lit.serving.protocol import is_binary
from keras_lit.serving.protocol import parse_predict_request  # noqa: F401

MAX_BATCH = 4096  # Elements per input of one predict request.


_STRUCTURE_CHECKS = {"JPEG": jpeg_structure_ok, "PNG": png_structure_ok}


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
            problem = frame_problem(value, max_pixels)
            if problem is None and header.format in _STRUCTURE_CHECKS:
                if not _STRUCTURE_CHECKS[header.format](value):
                    problem = (
                        f"corrupt {header.format} (its markers or chunks "
                        "are broken; the decoder would fail)"
                    )
            if problem is not None:
                raise RestError(400, f"{name}[{index}]: {problem}")


def class_name_limits(metadata):
    """`(max_class_names, max_class_names_bytes)`: the export's, or defaults.

    An export made before these limits existed (or a remote TF Serving
    model without metadata) gets the export defaults, so the app never runs
    an unbounded `zero_shot`.
    """
    from keras_lit.export.exporter import DEFAULT_MAX_CLASS_NAMES
    from keras_lit.export.exporter import DEFAULT_MAX_CLASS_NAMES_BYTES

    metadata = metadata or {}
    count = metadata.get("max_class_names", DEFAULT_MAX_CLASS_NAMES)
    size = metadata.get("max_class_names_bytes", DEFAULT_MAX_CLASS_NAMES_BYTES)
    return count, size


def check_class_names(inputs, metadata):
    """Refuses `class_names` over the export's count or byte limits."""
    values = inputs.get("class_names")
    if not isinstance(values, list):
        return
    names = list(_flatten(values))
    max_count, max_bytes = class_name_limits(metadata)
    if max_count is not None and len(names) > max_count:
        raise RestError(
            400,
            f"class_names: {len(names)} names, over the limit of "
            f"max_class_names={max_count} (each name is embedded once per "
            "template); send fewer",
        )
    total = sum(
        len(name.encode("utf-8", "surrogatepass"))
        for name in names
        if isinstance(name, str)
    )
    if max_bytes is not None and total > max_bytes:
        raise RestError(
            400,
            f"class_names: {total} bytes in all names, over the limit of "
            f"max_class_names_bytes={max_bytes}; send fewer or shorter names",
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
