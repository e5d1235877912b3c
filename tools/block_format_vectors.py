#!/usr/bin/env python3
"""Test vectors for the GGUF block formats from llama.cpp's own Python reference (the `gguf`
package on PyPI, gguf/quants.py: ggml's layouts, its Q8_0/Q4_0 quantizers, every dequantizer).

Writes Tests/Fixtures/block-formats/ (little-endian raw files):
  x.f32             2 rows x 512 float32 values (seeded normal * 0.3, a few outliers)
  q8_0.bin, q4_0.bin   gguf's quantization of x        (*.deq.f32: gguf's dequantization)
  q4_k.bin, q6_k.bin   random valid super-blocks, 2 x 2 (random bytes; the f16 scales set to
                    finite values in [0.002, 0.05])   (*.deq.f32: gguf's dequantization)

    python3 -m venv /tmp/ggufvenv && /tmp/ggufvenv/bin/pip install gguf==0.19.0 numpy
    /tmp/ggufvenv/bin/python tools/block_format_vectors.py
"""
import os
import numpy as np
import gguf.quants as q
from gguf import GGMLQuantizationType as T

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "block-formats")
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(1234)
x = (rng.randn(2, 512) * 0.3).astype(np.float32)
x[0, 7] = 2.5; x[1, 300] = -3.0; x[1, 32:64] = 0.0   # outliers and an all-zero block
x.tofile(os.path.join(out, "x.f32"))
for name, t in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0)]:
    b = q.quantize(x, t)
    b.tofile(os.path.join(out, name + ".bin"))
    q.dequantize(b, t).astype(np.float32).tofile(os.path.join(out, name + ".deq.f32"))

def f16_bytes(v):
    return np.array([v], dtype=np.float16).view(np.uint8)

for name, t, size, fields in [("q4_k", T.Q4_K, 144, [0, 2]), ("q6_k", T.Q6_K, 210, [208])]:
    blocks = rng.randint(0, 256, size=(4, size)).astype(np.uint8)
    for b in blocks:
        for f in fields:
            b[f:f + 2] = f16_bytes(rng.uniform(0.002, 0.05))
    blocks = blocks.reshape(2, 2 * size)
    blocks.tofile(os.path.join(out, name + ".bin"))
    q.dequantize(blocks, t).astype(np.float32).tofile(os.path.join(out, name + ".deq.f32"))
print("wrote", sorted(os.listdir(out)))
