"""The file formats read by hand: safetensors (against the `safetensors` library when installed, and by hand) and
GGUF (files written here byte by byte: every metadata type, the block formats with hand-computed values, and the
malformed cases, each a one-line error)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from minift.base.gguf import GGUFFile, dequantize
from minift.base.safetensors import load_safetensors, read_header, save_safetensors
from minift.errors import CheckpointError

TENSORS = {"w": torch.arange(12, dtype=torch.float32).view(3, 4), "b": torch.tensor([1.5, -2.0], dtype=torch.float16),
           "h": torch.randn(2, 3).to(torch.bfloat16), "ids": torch.arange(5), "empty": torch.zeros(0, 3)}


def test_safetensors_round_trip_and_peer_library(tmp_path):
    save_safetensors(TENSORS, tmp_path / "a.safetensors", {"note": "x"})
    back = load_safetensors(tmp_path / "a.safetensors")
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in TENSORS.items())
    assert read_header(tmp_path / "a.safetensors")[1] == {"note": "x"}
    st = pytest.importorskip("safetensors.torch")
    assert all(torch.equal(st.load_file(tmp_path / "a.safetensors")[k], v) for k, v in TENSORS.items())
    st.save_file(TENSORS, tmp_path / "b.safetensors")
    assert all(torch.equal(load_safetensors(tmp_path / "b.safetensors")[k], v) for k, v in TENSORS.items())


def test_safetensors_malformed_files_are_one_line_errors(tmp_path):
    save_safetensors(TENSORS, tmp_path / "ok.safetensors")
    good = (tmp_path / "ok.safetensors").read_bytes()
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    header["w"]["dtype"] = "F8_E4M3"
    blob = json.dumps(header).encode()
    cases = {"short": good[:5], "truncated": good[:-8], "huge header": struct.pack("<Q", 10**12) + good[8:],
             "not json": struct.pack("<Q", 4) + b"{{{{", "dtype": struct.pack("<Q", len(blob)) + blob + good[8 + n:]}
    for name, data in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            load_safetensors(tmp_path / f"{name}.safetensors")
        assert "\n" not in str(e.value), name


# -- GGUF, written here by hand ------------------------------------------------------------------------------------

def gguf_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, metadata: list[tuple[str, int, bytes]], tensors: list[tuple[str, list[int], int, bytes]],
               alignment: int = 32, magic: bytes = b"GGUF", version: int = 3) -> None:
    """metadata: (key, value type, encoded value); tensors: (name, dims fastest-first, ggml type, raw bytes)."""
    out = bytearray(magic + struct.pack("<IQQ", version, len(tensors), len(metadata)))
    for key, kind, value in metadata:
        out += gguf_string(key) + struct.pack("<I", kind) + value
    offset, blobs = 0, []
    for name, dims, kind, raw in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
        blobs.append(raw + b"\0" * (-len(raw) % alignment))
        offset += len(blobs[-1])
    out += b"\0" * (-len(out) % alignment)
    path.write_bytes(bytes(out) + b"".join(blobs))


def q4_1_block(d: float, m: float, nibbles: list[int]) -> bytes:
    """One Q4_1 block: element j < 16 in the low nibble of byte j, element j + 16 in its high nibble."""
    packed = bytes((nibbles[j] & 15) | ((nibbles[j + 16] & 15) << 4) for j in range(16))
    return np.float16(d).tobytes() + np.float16(m).tobytes() + packed


def test_gguf_metadata_of_every_type_and_tensor_shapes(tmp_path):
    meta = [("u8", 0, struct.pack("<B", 7)), ("i8", 1, struct.pack("<b", -7)), ("u16", 2, struct.pack("<H", 700)),
            ("i16", 3, struct.pack("<h", -700)), ("u32", 4, struct.pack("<I", 70000)),
            ("i32", 5, struct.pack("<i", -70000)), ("f32", 6, struct.pack("<f", 0.5)), ("bool", 7, b"\x01"),
            ("str", 8, gguf_string("héllo")), ("u64", 10, struct.pack("<Q", 2**40)), ("i64", 11, struct.pack("<q", -2)),
            ("f64", 12, struct.pack("<d", 0.25)),
            ("ints", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, -2, 3)),
            ("strs", 9, struct.pack("<IQ", 8, 2) + gguf_string("a b") + gguf_string("c")),
            ("general.alignment", 4, struct.pack("<I", 64))]
    w = np.arange(6, dtype=np.float32)
    write_gguf(tmp_path / "m.gguf", meta, [("w", [3, 2], 0, w.tobytes())], alignment=64)
    g = GGUFFile(tmp_path / "m.gguf")
    assert {k: v for k, v in g.metadata.items() if k != "general.alignment"} == {
        "u8": 7, "i8": -7, "u16": 700, "i16": -700, "u32": 70000, "i32": -70000, "f32": 0.5, "bool": True,
        "str": "héllo", "u64": 2**40, "i64": -2, "f64": 0.25, "ints": [1, -2, 3], "strs": ["a b", "c"]}
    t = g.tensor("w")  # dims [3, 2] fastest first: 2 rows of 3
    assert t.shape == (2, 3) and torch.equal(t, torch.arange(6.0).view(2, 3))


def test_gguf_block_formats_by_hand(tmp_path):
    nib = [j % 16 for j in range(16)] + [15 - j for j in range(16)]
    q41 = q4_1_block(0.5, -1.0, nib)
    want_q41 = [0.5 * q - 1.0 for q in nib]  # x = d·q + m
    q40 = q41[:2] + q41[4:]  # the same scale and nibbles, no minimum: x = d·(q − 8)
    want_q40 = [0.5 * (q - 8) for q in nib]
    q8 = np.float16(0.25).tobytes() + np.arange(-16, 16, dtype=np.int8).tobytes()
    want_q8 = [0.25 * q for q in range(-16, 16)]
    assert np.allclose(dequantize(np.frombuffer(q41, np.uint8), 3), want_q41)
    assert np.allclose(dequantize(np.frombuffer(q40, np.uint8), 2), want_q40)
    assert np.allclose(dequantize(np.frombuffer(q8, np.uint8), 8), want_q8)
    f16 = np.array([1.5, -2.25], np.float16).tobytes()
    bf16 = (np.array([3.0, -0.5], np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    assert np.array_equal(dequantize(np.frombuffer(f16, np.uint8), 1), [1.5, -2.25])
    assert np.array_equal(dequantize(np.frombuffer(bf16, np.uint8), 30), [3.0, -0.5])
    # packing the other way round (the first element in the high nibble, as NF4 does) must not decode the same
    swapped = q41[:4] + bytes(((b & 15) << 4) | (b >> 4) for b in q41[4:])
    assert not np.allclose(dequantize(np.frombuffer(swapped, np.uint8), 3), want_q41)
    write_gguf(tmp_path / "q.gguf", [], [("a", [32, 2], 3, q41 + q41), ("k", [256], 12, b"\0" * 144)])
    g = GGUFFile(tmp_path / "q.gguf")
    assert g.tensor("a").shape == (2, 32) and np.allclose(g.tensor("a")[1].numpy(), want_q41)
    with pytest.raises(CheckpointError, match="tensor 'k' is stored as Q4_K"):
        g.tensor("k")


def test_gguf_malformed_files_are_one_line_errors(tmp_path):
    write_gguf(tmp_path / "ok.gguf", [("x", 4, struct.pack("<I", 1))], [("w", [4], 0, b"\0" * 16)])
    good = (tmp_path / "ok.gguf").read_bytes()
    write_gguf(tmp_path / "magic.gguf", [], [], magic=b"GGML")
    write_gguf(tmp_path / "version.gguf", [], [], version=9)
    (tmp_path / "cut_header.gguf").write_bytes(good[:30])
    (tmp_path / "cut_data.gguf").write_bytes(good[:-20])  # the last 16 bytes are alignment padding
    bad_kind = bytearray(good)
    bad_kind[good.index(b"x") + 1:good.index(b"x") + 5] = struct.pack("<I", 99)
    (tmp_path / "kind.gguf").write_bytes(bytes(bad_kind))
    for name, words in [("magic", "not a GGUF file"), ("version", "version 9"), ("cut_header", "truncated"),
                        ("cut_data", "truncated"), ("kind", "unknown metadata value type 99")]:
        with pytest.raises(CheckpointError, match=words) as e:
            GGUFFile(tmp_path / f"{name}.gguf")
        assert "\n" not in str(e.value)
