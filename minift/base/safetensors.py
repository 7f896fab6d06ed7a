"""The safetensors format, read and written by hand: tensors with no code in the file.

    bytes 0‥8      N, a little-endian uint64
    bytes 8‥8+N    a JSON header: {name: {"dtype": "F32" | "F16" | "BF16" | "I64" | …, "shape": [...],
                                          "data_offsets": [begin, end]}, "__metadata__": {str: str}}
    bytes 8+N‥     the data buffer; each tensor's bytes are buffer[begin:end], row-major, little-endian

Reading it runs no code (unlike a pickled `pytorch_model.bin`): a hostile file can at worst be malformed, and every
malformation is refused with one line that names it. This is the format Hugging Face models ship in, and the one
minift caches a converted real model in (docs/pretrained-models.md).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from minift.errors import CheckpointError, MissingFileError
from minift.files import PathLike, atomic_path

# safetensors dtype name → (torch dtype, bytes per element)
DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
          "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2),
          "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1)}
NAMES = {dtype: name for name, (dtype, _) in DTYPES.items()}
MAX_HEADER = 100 * 2**20  # a header larger than this is not a real one


def read_header(path: PathLike) -> tuple[dict, dict, int]:
    """(tensor entries, __metadata__, offset of the data buffer), checked against the file's size."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no such file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: shorter than its 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER, size - 8):
            raise CheckpointError(f"{path} is not a safetensors file (or is truncated): header length {n} does not "
                                  f"fit in a file of {size} bytes")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    data_start, buffer = 8 + n, size - 8 - n
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
            raise CheckpointError(f"{where} has dtype {entry.get('dtype') if isinstance(entry, dict) else entry!r}, "
                                  f"which minift does not read (it reads {', '.join(DTYPES)})")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise CheckpointError(f"{where} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise CheckpointError(f"{where} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[entry["dtype"]][1]
        if not 0 <= begin <= end <= buffer or end - begin != expected:
            raise CheckpointError(f"{where}: bytes {begin}‥{end} do not hold a {entry['dtype']} tensor of shape "
                                  f"{shape} inside a {buffer}-byte buffer (truncated or malformed file)")
    return header, metadata, data_start


def load_safetensors(path: PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of the file, by name (CPU tensors that own their memory)."""
    header, _, start = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, entry in header.items():
        dtype, _ = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        if end == begin:  # an empty tensor has no bytes
            out[name] = torch.zeros(entry["shape"], dtype=dtype)
            continue
        raw = torch.frombuffer(bytearray(data[start + begin:start + end]), dtype=torch.uint8)
        out[name] = raw.view(dtype).reshape(entry["shape"])
    return out


def save_safetensors(tensors: dict[str, torch.Tensor], path: PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` as safetensors, atomically. Tensors that share memory (a tied head) are written once each
    under every name, as the format has no aliasing."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in NAMES:
            raise CheckpointError(f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot hold here")
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # pad the header so the buffer starts 8-byte aligned
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for raw in chunks:
            f.write(raw)
