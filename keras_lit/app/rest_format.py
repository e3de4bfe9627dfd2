"""TF Serving's REST predict format, for the app's own `:predict` endpoint.

The page talks to the app exactly as it would talk to TensorFlow Serving
(https://www.tensorflow.org/tfx/serving/api_rest), so the same page works
against a real server (`--serving-url`):

- request: `{"signature_name": ..., "inputs": {name: [...]}}` (columnar) or
  `{"signature_name": ..., "instances": [{name: value}, ...]}` (row); a
  bare list or value stands for a single-input signature. Binary values
  are `{"b64": "<base64>"}`.
- response: columnar requests get `{"outputs": {name: [...]}}`, row
  requests `{"predictions": [...]}`; with a single output the name is
  dropped (`{"outputs": [...]}`). Outputs whose name ends in `_bytes` are
  `{"b64": ...}`; other strings are plain JSON strings.
- errors: `{"error": "<message>"}` with an HTTP status (400 for bad
  input, 404 for an unknown model or signature).

Besides parsing, `check_image_headers` refuses `*_bytes` inputs whose
header claims more than `max_pixels` pixels, reading only the header,
before any model decodes them.
"""

import base64
import binascii
import json

import numpy as np


class RestError(Exception):
    """A request the REST API refuses: an HTTP status and a message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self):
        return {"error": self.message}


def parse_predict_request(payload, input_names=None):
    """Parses a predict body.

    Args:
        payload: the raw request body (`bytes`) or an already parsed dict.
        input_names: optional callable `signature_name -> list of input
            names`, used to name a bare (unnamed) input; a signature it
            does not know raises `RestError(404)`.

    Returns:
        `(signature_name, inputs, format)`: the signature key
        (`"serving_default"` when absent), `{name: nested list}` with
        `{"b64": ...}` objects turned into `bytes` and strings encoded as
        UTF-8 `bytes`, and `"columnar"` or `"row"`.
    """
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise RestError(400, f"JSON Parse error: {error}") from None
    else:
        body = payload
    if not isinstance(body, dict):
        raise RestError(
            400,
            "JSON Value: the request body must be an object with "
            "'signature_name' and 'inputs' (or 'instances'). Received: "
            f"{type(body).__name__}",
        )
    signature_name = body.get("signature_name", "serving_default")
    if not isinstance(signature_name, str) or not signature_name:
        raise RestError(
            400,
            f"'signature_name' must be a string. Received: {signature_name!r}",
        )
    if ("inputs" in body) == ("instances" in body):
        raise RestError(
            400,
            "Missing 'inputs' or 'instances' key"
            if "inputs" not in body
            else "Both 'inputs' and 'instances' are set; send only one",
        )

    def single_name():
        names = list(input_names(signature_name)) if input_names else []
        if len(names) != 1:
            raise RestError(
                400,
                f"Signature {signature_name!r} takes {len(names)} inputs "
                f"{names}; name each input in an object",
            )
        return names[0]

    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {single_name(): columns}
        inputs = {name: _decode(value) for name, value in columns.items()}
        return signature_name, inputs, "columnar"
    instances = body["instances"]
    if not isinstance(instances, list):
        raise RestError(400, "'instances' must be a list")
    named = [
        isinstance(item, dict) and set(item) != {"b64"} for item in instances
    ]
    if instances and all(named):
        names = list(instances[0])
        if any(sorted(item) != sorted(names) for item in instances):
            raise RestError(
                400, "Every instance must have the same named inputs"
            )
        inputs = {
            name: _decode([item[name] for item in instances]) for name in names
        }
    elif any(named):
        raise RestError(400, "Mixed named and unnamed instances")
    else:
        inputs = {single_name(): _decode(instances)}
    return signature_name, inputs, "row"


def encode_predict_response(outputs, format):
    """`{name: np.ndarray}` -> the JSON body TF Serving would answer."""
    encoded = {name: _encode(name, value) for name, value in outputs.items()}
    if format == "columnar":
        if len(encoded) == 1:
            return {"outputs": next(iter(encoded.values()))}
        return {"outputs": encoded}
    if len(encoded) == 1:
        return {"predictions": next(iter(encoded.values()))}
    sizes = {len(value) for value in encoded.values()}
    if len(sizes) != 1:
        raise RestError(
            400,
            "The row format needs every output to have the same batch "
            "size; send the request in the columnar 'inputs' format",
        )
    (rows,) = sizes
    return {
        "predictions": [
            {name: value[row] for name, value in encoded.items()}
            for row in range(rows)
        ]
    }


def check_image_headers(inputs, max_pixels):
    """Refuses `*_bytes` images whose header claims over `max_pixels`.

    Reads only the file header (PNG IHDR, JPEG SOF, GIF, BMP, WebP), never
    the pixels, so a small file claiming a huge image (a decompression
    bomb) is refused before anything decodes it. Unknown formats pass: the
    model reports those with its own message.
    """
    for name, values in inputs.items():
        if not name.endswith("_bytes"):
            continue
        for index, value in enumerate(_flatten(values)):
            if not isinstance(value, bytes):
                continue
            height, width = image_header_size(value)
            if height > 0 and width > 0 and height * width > max_pixels:
                raise RestError(
                    400,
                    f"{name}[{index}]: header claims {width}x{height} pixels "
                    f"({height * width / 1e6:.1f} megapixels), over the "
                    f"app's limit of max_pixels={max_pixels}; refused "
                    "before decoding (possible decompression bomb)",
                )


def image_header_size(data):
    """`(height, width)` from an image header, `(-1, -1)` if unknown.

    A pure-Python reader of the same headers as
    `keras_lit.image_ops.image_header_size` (which runs as TF ops inside
    the SavedModel); this one costs microseconds per request.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return _be(data, 20, 4), _be(data, 16, 4)
    if data[:3] == b"GIF" and len(data) >= 10:
        return _le(data, 8, 2), _le(data, 6, 2)
    if data[:2] == b"BM" and len(data) >= 26:
        height = _le(data, 22, 4)
        if height >= 2**31:  # Top-down BMPs store a negative height.
            height = 2**32 - height
        return height, _le(data, 18, 4)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = data[12:16]
        if chunk == b"VP8 " and len(data) >= 30:
            return _le(data, 28, 2) % 16384, _le(data, 26, 2) % 16384
        if chunk == b"VP8L" and len(data) >= 25:
            bits = _le(data, 21, 4)
            return (bits // 16384) % 16384 + 1, bits % 16384 + 1
        if chunk == b"VP8X" and len(data) >= 30:
            return _le(data, 27, 3) + 1, _le(data, 24, 3) + 1
        return -1, -1
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return -1, -1


def _jpeg_size(data):
    """Walks the JPEG segments to the first start-of-frame marker."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return -1, -1
        marker = data[position + 1]
        if marker == 0xFF:  # Fill byte.
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = _be(data, position + 2, 2)
        is_frame = 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)
        if is_frame and position + 9 <= len(data):
            return _be(data, position + 5, 2), _be(data, position + 7, 2)
        if length < 2:
            return -1, -1
        position += 2 + length
    return -1, -1


def _be(data, offset, count):
    return int.from_bytes(data[offset : offset + count], "big")


def _le(data, offset, count):
    return int.from_bytes(data[offset : offset + count], "little")


def _decode(value):
    """JSON -> Python: `{"b64": ...}` to bytes, strings to UTF-8 bytes."""
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RestError(
                400,
                'A JSON object inside a tensor must be {"b64": '
                f'"<base64 string>"}}. Received keys: {sorted(value)}',
            )
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RestError(
                400, f"Unable to base64 decode a 'b64' value: {error}"
            ) from None
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def _encode(name, array):
    """An output array as a JSON-ready nested list."""

    def convert(value):
        if isinstance(value, list):
            return [convert(item) for item in value]
        if isinstance(value, bytes):
            if not name.endswith("_bytes"):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value

    return convert(np.asarray(array).tolist())


def _flatten(values):
    if isinstance(values, list):
        for item in values:
            yield from _flatten(item)
    else:
        yield values
