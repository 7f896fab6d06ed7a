"""The GGUF file format (llama.cpp's), read by hand: metadata, tensor table, and dequantisation of the block types.

    "GGUF"  uint32 version (2 or 3)  uint64 n_tensors  uint64 n_kv
    n_kv ×      key (uint64 length + UTF-8)  uint32 value type  value          (types below; arrays nest)
    n_tensors × name  uint32 n_dims  uint64 dims[n_dims] (fastest-varying first)  uint32 ggml type  uint64 offset
    padding to `general.alignment` (default 32), then the data section; each tensor starts at its offset in it

Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array (uint32 element type,
uint64 count, elements), 10 u64, 11 i64, 12 f64. All little-endian.

Dims are listed fastest-varying first, so an `nn.Linear(in, out)` weight appears as [in, out]: reversed, it is the
row-major (out, in) matrix PyTorch uses. Quantised types store blocks of 32 consecutive elements along that fastest
dimension (docs/pretrained-models.md works one block by hand):

    Q8_0   34 bytes: fp16 scale d, 32 × int8 q                 x = d · q
    Q4_0   18 bytes: fp16 d, 16 bytes of 4-bit q               x = d · (q − 8)
    Q4_1   20 bytes: fp16 d, fp16 m, 16 bytes of 4-bit q       x = d · q + m
    element j < 16 of a block is the LOW nibble of byte j, element j + 16 the HIGH nibble of byte j

F32, F16 and BF16 are stored as they are. Every other type (the K-quants Q4_K, Q6_K, …) is refused with an error
that names it. Dequantisation is vectorised with NumPy over all blocks at once (a Python loop over 30M blocks would
take minutes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minift.errors import CheckpointError, MissingFileError
from minift.files import PathLike

F32, F16, Q4_0, Q4_1, Q8_0, BF16 = 0, 1, 2, 3, 8, 30
# ggml type id → (name, elements per block, bytes per block)
SUPPORTED = {F32: ("F32", 1, 4), F16: ("F16", 1, 2), BF16: ("BF16", 1, 2), Q8_0: ("Q8_0", 32, 34),
             Q4_0: ("Q4_0", 32, 18), Q4_1: ("Q4_1", 32, 20)}
OTHER_TYPES = {6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
               15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
               22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M"}
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # row-major (the file's dims reversed)
    ggml_type: int
    offset: int             # absolute byte offset in the file
    n_bytes: int


class _Cursor:
    """Reads the header's little-endian fields one after another, with a clear error at the end of the file."""

    def __init__(self, data: np.memmap, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CheckpointError(f"{self.path} is truncated: its header ends at byte {len(self.data)} while "
                                  f"reading {n} bytes at {self.pos}")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def scalar(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        if n > len(self.data):
            raise CheckpointError(f"{self.path}: a string of {n} bytes at byte {self.pos} cannot be (malformed file)")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, kind: int):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item, count = self.scalar("<I"), self.scalar("<Q")
            if item in _SCALARS and item != 7:  # numeric arrays in one read
                dtype = np.dtype(_SCALARS[item])
                return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).tolist()
            return [self.value(item) for _ in range(count)]
        raise CheckpointError(f"{self.path}: unknown metadata value type {kind} at byte {self.pos} (malformed file)")


class GGUFFile:
    """An open GGUF file: `metadata` (key → value), `tensors` (name → TensorInfo), `tensor(name)` dequantised."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"no such file: {self.path}")
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        c = _Cursor(self.data, self.path)
        if c.take(4) != b"GGUF":
            raise CheckpointError(f"{self.path} is not a GGUF file (it does not start with the bytes 'GGUF')")
        self.version = c.scalar("<I")
        if self.version not in (2, 3):
            raise CheckpointError(f"{self.path} is GGUF version {self.version}; minift reads versions 2 and 3")
        n_tensors, n_kv = c.scalar("<Q"), c.scalar("<Q")
        if n_tensors > 10**6 or n_kv > 10**6:
            raise CheckpointError(f"{self.path}: {n_tensors} tensors and {n_kv} metadata keys cannot be (malformed)")
        self.metadata = {}
        for _ in range(n_kv):
            key = c.string()
            self.metadata[key] = c.value(c.scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name, n_dims = c.string(), c.scalar("<I")
            if n_dims > 8:
                raise CheckpointError(f"{self.path}: tensor {name!r} claims {n_dims} dimensions (malformed file)")
            dims = [c.scalar("<Q") for _ in range(n_dims)]
            infos.append((name, tuple(reversed(dims)), c.scalar("<I"), c.scalar("<Q")))
        alignment = int(self.metadata.get("general.alignment", 32))
        start = -(-c.pos // alignment) * alignment
        self.tensors = {}
        for name, shape, kind, offset in infos:
            n = int(np.prod(shape, dtype=np.int64))
            n_bytes = _n_bytes(kind, n, name, shape, self.path) if kind in SUPPORTED else 0
            if kind in SUPPORTED and start + offset + n_bytes > len(self.data):
                raise CheckpointError(f"{self.path} is truncated: tensor {name!r} needs bytes up to "
                                      f"{start + offset + n_bytes}, the file has {len(self.data)}")
            self.tensors[name] = TensorInfo(name, shape, kind, start + offset, n_bytes)

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor `name`, dequantised to float32, in its row-major shape."""
        info = self.tensors.get(name)
        if info is None:
            raise CheckpointError(f"{self.path} has no tensor {name!r}")
        if info.ggml_type not in SUPPORTED:
            kind = OTHER_TYPES.get(info.ggml_type, f"type {info.ggml_type}")
            raise CheckpointError(f"{self.path}: tensor {name!r} is stored as {kind}, which minift does not "
                                  f"dequantise (it reads {', '.join(n for n, _, _ in SUPPORTED.values())}); "
                                  "use a GGUF file quantised with one of those")
        raw = np.asarray(self.data[info.offset:info.offset + info.n_bytes])
        values = dequantize(raw, info.ggml_type)
        return torch.from_numpy(values).reshape(info.shape)


def _n_bytes(kind: int, n: int, name: str, shape, path: Path) -> int:
    _, block, block_bytes = SUPPORTED[kind]
    if n % block:
        raise CheckpointError(f"{path}: tensor {name!r} of shape {shape} has {n} elements, not a whole number of "
                              f"{block}-element blocks (malformed file)")
    return n // block * block_bytes


def dequantize(raw: np.ndarray, kind: int) -> np.ndarray:
    """Bytes of one tensor → float32 values, in file order (see the module docstring for each layout)."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if kind == F32:
        return raw.view(np.float32).copy()
    if kind == F16:
        return raw.view(np.float16).astype(np.float32)
    if kind == BF16:  # bf16 is the top half of a float32
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if kind == Q8_0:
        blocks = raw.reshape(-1, 34)
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)          # (n_blocks, 1)
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)            # (n_blocks, 32)
        return (d * q).reshape(-1)
    if kind in (Q4_0, Q4_1):
        width = 18 if kind == Q4_0 else 20
        blocks = raw.reshape(-1, width)
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, width - 16:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # elements 0‥15 low, 16‥31 high
        if kind == Q4_0:
            return (d * (q - 8.0)).reshape(-1)
        m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
        return (d * q + m).reshape(-1)
    raise CheckpointError(f"ggml type {kind} cannot be dequantised here")
