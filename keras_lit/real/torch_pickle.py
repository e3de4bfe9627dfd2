"""Reads PyTorch's legacy (pre-1.6) `.pth` files into numpy, without torch.

A legacy file is five pickles followed by raw storage bytes:

1. a magic number (`0x1950a86a20f9469cfc6c`), 2. the protocol version
(1001), 3. system information (endianness, C type sizes), 4. the object
itself (e.g. a `state_dict`), in which every tensor is
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` and
every storage a persistent id `("storage", StorageClass, key, location,
numel, view_metadata)`, 5. the list of storage keys, in file order. Then,
for each key: an 8-byte little-endian element count and that many elements.

`load_legacy_state_dict` follows that layout with a restricted unpickler:
only the few globals a `state_dict` needs are resolved (storage classes,
`_rebuild_tensor_v2`, `OrderedDict`); anything else is refused, so a
malicious pickle cannot run code.
"""

import collections
import pickle
import struct

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class LegacyTorchFileError(ValueError):
    """The file is not a readable legacy PyTorch `state_dict`."""


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None


class _TensorView:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def to_numpy(self):
        base = self.storage.array
        if not self.size:
            return base[self.offset].copy()
        itemsize = base.dtype.itemsize
        end = (
            self.offset
            + 1
            + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        )
        if min(self.size) > 0 and end > base.size:
            raise LegacyTorchFileError(
                "A tensor reaches past the end of its storage."
            )
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, offset, size, stride, *unused):
    return _TensorView(storage, offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise LegacyTorchFileError(
            f"Unexpected object {module}.{name} in the file: only tensors "
            "and ordered dicts are read."
        )

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id[0] == "storage"):
            raise LegacyTorchFileError(
                f"Unexpected persistent id {saved_id!r}."
            )
        storage_type, key, _, numel, view_metadata = saved_id[1:]
        if view_metadata is not None:
            raise LegacyTorchFileError("Storage views are not supported.")
        if key not in self.storages:
            self.storages[key] = _Storage(
                np.dtype(STORAGE_DTYPES[storage_type.name]), numel
            )
        return self.storages[key]


def load_legacy_state_dict(path):
    """`{name: numpy array}` from a legacy (pre-1.6) PyTorch `.pth` file.

    Args:
        path: path of a file written by `torch.save` before PyTorch 1.6 (or
            with `_use_new_zipfile_serialization=False`).

    Returns:
        An ordered dict of numpy arrays with the tensors' shapes.

    Raises:
        FileNotFoundError: no such file.
        LegacyTorchFileError: not a legacy PyTorch file, truncated, or it
            holds something other than tensors.
    """
    with open(path, "rb") as file:
        try:
            return _read(file)
        except LegacyTorchFileError as error:
            raise LegacyTorchFileError(f"{path}: {error}") from None
        except (pickle.UnpicklingError, EOFError, struct.error) as error:
            raise LegacyTorchFileError(
                f"{path}: not a complete legacy PyTorch file ({error})."
            ) from None


def _read(file):
    if file.read(2) == b"PK":
        raise LegacyTorchFileError(
            "a zip-format PyTorch file (1.6 or newer), not the legacy format."
        )
    file.seek(0)
    if pickle.load(file) != LEGACY_MAGIC_NUMBER:
        raise LegacyTorchFileError("no legacy PyTorch magic number.")
    if pickle.load(file) != LEGACY_PROTOCOL_VERSION:
        raise LegacyTorchFileError("unknown legacy protocol version.")
    system = pickle.load(file)
    if not isinstance(system, dict) or not system.get("little_endian"):
        raise LegacyTorchFileError("only little-endian files are supported.")
    unpickler = _Unpickler(file)
    state = unpickler.load()
    keys = pickle.load(file)
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None:
            raise LegacyTorchFileError(f"unknown storage key {key!r}.")
        (count,) = struct.unpack("<q", file.read(8))
        if count != storage.numel:
            raise LegacyTorchFileError(
                f"storage {key!r} holds {count} elements, expected "
                f"{storage.numel}."
            )
        nbytes = count * storage.dtype.itemsize
        data = file.read(nbytes)
        if len(data) != nbytes:
            raise LegacyTorchFileError("the file is truncated.")
        storage.array = np.frombuffer(data, dtype=storage.dtype)
    if not isinstance(state, dict):
        raise LegacyTorchFileError("the file does not hold a state_dict.")
    arrays = collections.OrderedDict()
    for name, value in state.items():
        if not isinstance(value, _TensorView):
            raise LegacyTorchFileError(f"{name!r} is not a tensor.")
        if value.storage.array is None:
            raise LegacyTorchFileError(f"the storage of {name!r} is missing.")
        arrays[name] = value.to_numpy()
    return arrays
