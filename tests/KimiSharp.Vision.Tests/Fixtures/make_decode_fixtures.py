#!/usr/bin/python3
# Regenerates decode-*.{jpg,gif,bmp,png} and their Pillow 9.4 decodes (decode-*.rgb: raw RGB after convert("RGB")).
from PIL import Image

def pattern(w, h):
    data = bytes((x * 7 + y * 13 + c * 31 + (x * y) % 17) % 256 for y in range(h) for x in range(w) for c in range(3))
    return Image.frombytes("RGB", (w, h), data)

img = pattern(40, 30)
img.save("decode-photo.jpg", quality=90)
img.quantize(64).save("decode-palette.gif")
img.save("decode-bitmap.bmp")
rgba = img.copy(); rgba.putalpha(Image.linear_gradient("L").resize((40, 30)))
rgba.save("decode-alpha.png")
for name in ["decode-photo.jpg", "decode-palette.gif", "decode-bitmap.bmp", "decode-alpha.png"]:
    with Image.open(name) as opened:
        rgb = opened.convert("RGB")
        open(name.rsplit(".", 1)[0] + ".rgb", "wb").write(rgb.tobytes())

# An animated GIF of three full frames (no transparency) and each frame's Pillow decode, concatenated.
frames = [pattern(40, 30).point(lambda v, k=k: (v + 60 * k) % 256).quantize(64) for k in range(3)]
frames[0].save("decode-animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=1)
with Image.open("decode-animated.gif") as gif, open("decode-animated.rgb", "wb") as out:
    for k in range(gif.n_frames):
        gif.seek(k)
        out.write(gif.convert("RGB").tobytes())
