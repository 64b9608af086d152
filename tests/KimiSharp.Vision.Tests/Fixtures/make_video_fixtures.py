#!/usr/bin/python3
# Regenerates the video fixtures with Debian 12's python3-pil and python3-numpy:
#  - video-sampling.json: frame indices and chunk timestamps computed the way the K2.5 processor's split_video_chunks
#    and media_utils.timestamp_as_str compute them (numpy linspace + round, datetime.strftime), for a spread of cases;
#  - video-ten.gif: ten 40×30 frames of 250 ms (4 fps), and video-ten.rgb: Pillow's RGB decode of every frame.
import json, math
from datetime import datetime, timezone
import numpy as np
from PIL import Image

def timestamp_as_str(t, mode):
    if mode == "hh:mm:ss.fff":
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S") + f".{int((t % 1) * 1000):03d}"
    if mode == "mm:ss.fff":
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%M:%S") + f".{int((t % 1) * 1000):03d}"
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%M:%S")

def sample(num_frames, fps, sample_fps, chunk=4):
    sample_fps = min(sample_fps, fps)
    n = max(round(num_frames * sample_fps / fps), 1)
    inds = np.linspace(0, num_frames - 1, n).round().astype(int).tolist()
    starts = [inds[i] / float(fps) for i in range(0, len(inds), chunk)]
    return inds, starts

cases = []
for num_frames, fps, sample_fps in [(1, 30, 2), (10, 4, 2), (20, 10, 2), (300, 29.97, 2), (901, 30000 / 1001, 2),
                                    (7, 25, 2), (250, 25, 2), (3, 10, 10), (100, 1, 2), (4321, 59.94, 2), (50, 24, 0.5),
                                    (36000, 24, 2), (45, 15, 1)]:
    inds, starts = sample(num_frames, fps, sample_fps)
    cases.append({"frames": num_frames, "fps": fps, "sample_fps": sample_fps, "indices": inds,
                  "timestamps": {m: [timestamp_as_str(s, m) for s in starts] for m in ["hh:mm:ss.fff", "mm:ss.fff", "mm:ss"]}})
# Clock edge cases: near whole seconds, past an hour, past a day.
clock = [{"seconds": t, "text": timestamp_as_str(t, "hh:mm:ss.fff")} for t in
         [0.0, 0.5, 2.9999999, 2.9999996, 59.999, 3599.9995, 3600.25, 86400 + 61.5, 1 / 3, 14 / 29.97002997002997]]
json.dump({"cases": cases, "clock": clock}, open("video-sampling.json", "w"), indent=1)

def pattern(w, h, shift):
    data = bytes((x * 7 + y * 13 + c * 31 + (x * y) % 17 + shift) % 256 for y in range(h) for x in range(w) for c in range(3))
    return Image.frombytes("RGB", (w, h), data)

frames = [pattern(40, 30, 23 * k).quantize(64) for k in range(10)]
frames[0].save("video-ten.gif", save_all=True, append_images=frames[1:], duration=250, loop=0, disposal=1)
with Image.open("video-ten.gif") as gif, open("video-ten.rgb", "wb") as out:
    for k in range(gif.n_frames):
        gif.seek(k)
        out.write(gif.convert("RGB").tobytes())
