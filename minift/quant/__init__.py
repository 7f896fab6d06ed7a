"""Stage 3 (beside training): quantisation, the arithmetic that lets QLoRA keep a frozen base in 4 bits.

    codebooks.py    the NF4, FP4, Int4 code tables and the 8-bit dynamic map
    blockwise.py    block-wise absmax quantisation, nibble packing, double quantisation (`quantize_nf4`)
    ggml.py         llama.cpp's Q4_0 and Q4_1 blocks, for comparison
    formats.py      every format's round trip and error side by side; a model's linear weights swapped for theirs
    linear4bit.py   a frozen 4-bit linear layer: dequantise in the forward, gradients for the input only

docs/quantization.md explains the formats; the QLoRA method itself is a PEFT method (minift/peft/qlora.py).
"""

from minift.quant.blockwise import DoubleQuant, Quantized4bit, double_quantize, quantize_4bit, quantize_nf4
from minift.quant.codebooks import CODEBOOKS, codebook, dynamic_map, normal_float_levels
from minift.quant.linear4bit import Linear4bit, weight_memory_bytes
from minift.quant.formats import FORMATS, error, fake_quantize_linears_, roundtrip

__all__ = ["CODEBOOKS", "codebook", "dynamic_map", "normal_float_levels", "DoubleQuant", "Quantized4bit",
           "double_quantize", "quantize_4bit", "quantize_nf4", "Linear4bit", "weight_memory_bytes", "FORMATS",
           "error", "fake_quantize_linears_", "roundtrip"]
