#!/usr/bin/python3
# Regenerates webp-*.webp and their Pillow decodes (webp-*.rgb: raw RGB after convert("RGB"); for the animation, every
# frame's canvas concatenated). Run with Debian 12's python3-pil (Pillow 9.4 over libwebp 1.2.4).
from PIL import Image

def pattern(w, h, shift=0):
    data = bytes((x * 7 + y * 13 + c * 31 + (x * y) % 17 + shift) % 256 for y in range(h) for x in range(w) for c in range(3))
    return Image.frombytes("RGB", (w, h), data)

rgb = pattern(40, 30)
rgba = rgb.copy(); rgba.putalpha(Image.linear_gradient("L").resize((40, 30)))
rgb.save("webp-lossy.webp", quality=80)
rgb.save("webp-lossless.webp", lossless=True)
rgba.save("webp-lossy-alpha.webp", quality=80)
rgba.save("webp-lossless-alpha.webp", lossless=True)
frames = [pattern(40, 30, 60 * k) for k in range(3)]
frames[0].save("webp-animated.webp", save_all=True, append_images=frames[1:], duration=[100, 200, 300], lossless=True, loop=0)
for name in ["webp-lossy", "webp-lossless", "webp-lossy-alpha", "webp-lossless-alpha"]:
    with Image.open(name + ".webp") as opened:
        open(name + ".rgb", "wb").write(opened.convert("RGB").tobytes())
with Image.open("webp-animated.webp") as animation, open("webp-animated.rgb", "wb") as out:
    for k in range(animation.n_frames):
        animation.seek(k)
        out.write(animation.convert("RGB").tobytes())
