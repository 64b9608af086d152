#!/usr/bin/python3
# Regenerates k25-preprocess.bin with Debian python3-pil 9.4.0 and numpy, following the published K2.5 processor
# steps (navit_resize_image, PIL BICUBIC resize, zero pad bottom/right, (x/255 - mean) * (1/std) in float32,
# navit_patchify). Record: int32 inPatchLimit, sideLimit, srcW, srcH, rows, cols, then rows*cols*3*14*14 float32.
import math, struct
import numpy as np
from PIL import Image

P, MERGE = 14, 2

def pattern(w, h):
    data = bytes((x * 7 + y * 13 + c * 31 + (x * y) % 17) % 256 for y in range(h) for x in range(w) for c in range(3))
    return Image.frombytes("RGB", (w, h), data)

def plan(w, h, limit, side):
    s1 = math.sqrt(limit / (max(1.0, w // P) * max(1.0, h // P)))
    scale = min(1.0, s1, side * P / w, side * P / h)
    nw, nh = min(max(1, int(w * scale)), side * P), min(max(1, int(h * scale)), side * P)
    f = MERGE * P
    return nw, nh, (f - nw % f) % f, (f - nh % f) % f

cases = [(16384, 512, 100, 61), (64, 512, 200, 150), (16384, 6, 100, 61), (16384, 512, 28, 28), (40, 512, 17, 300)]
with open("k25-preprocess.bin", "wb") as out:
    for limit, side, w, h in cases:
        nw, nh, pw, ph = plan(w, h, limit, side)
        img = pattern(w, h).resize((nw, nh), resample=Image.Resampling.BICUBIC)
        x = np.pad(np.asarray(img), ((0, ph), (0, pw), (0, 0)), mode="constant", constant_values=0)[None]
        x = (x / 255.0).astype(np.float32)
        x -= np.array([0.5, 0.5, 0.5])
        x *= 1.0 / np.array([0.5, 0.5, 0.5])
        T, H, W, C = x.shape
        patches = x.reshape(T, H // P, P, W // P, P, C).transpose(0, 1, 3, 5, 2, 4).reshape(-1, C, P, P)
        out.write(struct.pack("<6i", limit, side, w, h, H // P, W // P))
        out.write(patches.astype("<f4").tobytes())
