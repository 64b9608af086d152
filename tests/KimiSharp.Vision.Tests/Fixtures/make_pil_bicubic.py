#!/usr/bin/python3
# Regenerates pil-bicubic.bin: Pillow BICUBIC resizes of a deterministic RGB pattern (Debian python3-pil 9.4.0).
# Record: int32 srcW, srcH, dstW, dstH (little-endian), then dstW*dstH*3 bytes of RGB.
import struct
from PIL import Image

def pattern(w, h):
    data = bytes((x * 7 + y * 13 + c * 31 + (x * y) % 17) % 256 for y in range(h) for x in range(w) for c in range(3))
    return Image.frombytes("RGB", (w, h), data)

cases = [(100, 61, 50, 30), (37, 23, 80, 50), (64, 64, 17, 9), (30, 40, 30, 20), (30, 40, 45, 40), (200, 150, 123, 97), (9, 5, 3, 2)]
with open("pil-bicubic.bin", "wb") as f:
    for sw, sh, dw, dh in cases:
        out = pattern(sw, sh).resize((dw, dh), resample=Image.Resampling.BICUBIC)
        f.write(struct.pack("<4i", sw, sh, dw, dh))
        f.write(out.tobytes())
