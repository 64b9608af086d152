#!/usr/bin/python3
# Regenerates torch-golden/: a random tiny K2.5 vision checkpoint (F32 safetensors + config.json) and the features
# torch computes for it (Debian python3-torch 1.13), following the published MoonViT3d / PatchMergerMLP forward:
# conv patch embedding, F.interpolate bicubic position table (or the table itself when the grid equals it), float32
# numpy sin-cos time embedding for chunks of >1 frame, complex64 2-D RoPE (x then y per frequency), LayerNorm blocks,
# tanh-GELU MLP, final LayerNorm, tpool merge, LayerNorm per sub-patch, Linear, exact GELU, Linear. Everything else
# runs in float64 so the fixture pins semantics, not float32 rounding.
# cases.bin record: int32 frames, rows, cols; float32 pixels [frames*rows*cols, 3, 14, 14]; float64 features [tokens, 24].
import json, struct
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
D, HEADS, INTER, LAYERS, P, TH, TW, TT, TEXT = 32, 4, 48, 2, 14, 4, 6, 4, 24
HD = D // HEADS
W = {}
def lin(name, rows, cols, shape=None):
    W[name + ".weight"] = (torch.randn(rows, cols, dtype=torch.float64) / cols ** 0.5).reshape(shape or (rows, cols))
    W[name + ".bias"] = torch.randn(rows, dtype=torch.float64) * 0.1
def norm(name, n):
    W[name + ".weight"] = 1 + torch.randn(n, dtype=torch.float64) * 0.1
    W[name + ".bias"] = torch.randn(n, dtype=torch.float64) * 0.1
lin("vision_tower.patch_embed.proj", D, 3 * P * P, (D, 3, P, P))
W["vision_tower.patch_embed.pos_emb.weight"] = torch.randn(TH, TW, D, dtype=torch.float64) * 0.5
for i in range(LAYERS):
    b = f"vision_tower.encoder.blocks.{i}."
    norm(b + "norm0", D); lin(b + "wqkv", 3 * D, D); lin(b + "wo", D, D)
    norm(b + "norm1", D); lin(b + "mlp.fc0", INTER, D); lin(b + "mlp.fc1", D, INTER)
norm("vision_tower.encoder.final_layernorm", D)
norm("mm_projector.pre_norm", D)
lin("mm_projector.proj.0", 4 * D, 4 * D); lin("mm_projector.proj.2", TEXT, 4 * D)
for k in W: W[k] = W[k].float().double()  # the stored float32 values are the weights

def time_table():
    omega = np.arange(D // 2, dtype=np.float32); omega /= D / 2.0; omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", np.arange(TT, dtype=np.float32), omega)
    return torch.from_numpy(np.concatenate([np.sin(out), np.cos(out)], axis=1)).float().unsqueeze(1)

def rope_table(rows, cols):
    N = 512 * 512
    flat = torch.arange(0, N).float()
    x, y = flat % 512, flat // 512
    freqs = 1.0 / (10000 ** (torch.arange(0, HD, 4)[: HD // 4].float() / HD))
    xc = torch.polar(torch.ones(N, HD // 4), torch.outer(x, freqs).float())
    yc = torch.polar(torch.ones(N, HD // 4), torch.outer(y, freqs).float())
    return torch.cat([xc.unsqueeze(-1), yc.unsqueeze(-1)], dim=-1).reshape(512, 512, -1)[:rows, :cols].reshape(-1, HD // 2)

def rope(x, cis):
    xc = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * cis.unsqueeze(-2)).flatten(-2).type_as(x)

def ln(x, name, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"], eps)

def linear(x, name):
    return F.linear(x, W[name + ".weight"], W[name + ".bias"])

def forward(pixels, t, h, w):
    x = F.conv2d(pixels, W["vision_tower.patch_embed.proj.weight"], W["vision_tower.patch_embed.proj.bias"], stride=P).view(pixels.shape[0], -1)
    table = W["vision_tower.patch_embed.pos_emb.weight"]
    pos = table.flatten(end_dim=1) if (h, w) == (TH, TW) else \
        F.interpolate(table.permute(2, 0, 1).unsqueeze(0), size=(h, w), mode="bicubic").squeeze(0).permute(1, 2, 0).flatten(end_dim=1)
    if t > 1: pos = pos.unsqueeze(0).repeat(t, 1, 1) + time_table()[0:t]
    x = x + pos.reshape(-1, D)
    cis = rope_table(h, w).repeat(t, 1)
    for i in range(LAYERS):
        b = f"vision_tower.encoder.blocks.{i}."
        qkv = linear(ln(x, b + "norm0"), b + "wqkv").view(-1, 3, HEADS, HD)
        q, k, v = torch.unbind(qkv, dim=-3)
        q, k = rope(q, cis), rope(k, cis)
        scores = torch.einsum("ihd,jhd->hij", q, k) / HD ** 0.5
        attn = torch.einsum("hij,jhd->ihd", torch.softmax(scores, dim=-1), v).reshape(-1, D)
        x = x + linear(attn, b + "wo")
        x = x + linear(F.gelu(linear(ln(x, b + "norm1"), b + "mlp.fc0"), approximate="tanh"), b + "mlp.fc1")
    x = ln(x, "vision_tower.encoder.final_layernorm")
    merged = x.view(t, h // 2, 2, w // 2, 2, D).permute(0, 1, 3, 2, 4, 5).contiguous().mean(dim=0).view(h // 2 * w // 2, 4, D)
    y = ln(merged, "mm_projector.pre_norm").view(-1, 4 * D)
    return linear(F.gelu(linear(y, "mm_projector.proj.0")), "mm_projector.proj.2")

def save_safetensors(path):
    header, blobs, offset = {}, [], 0
    for name in sorted(W):
        data = W[name].float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(W[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data); offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text); [f.write(b) for b in blobs]

save_safetensors("torch-golden/model.safetensors")
config = {"architectures": ["KimiK25ForConditionalGeneration"], "model_type": "kimi_k25", "media_placeholder_token_id": 163605,
          "vision_config": {"init_pos_emb_height": TH, "init_pos_emb_time": TT, "init_pos_emb_width": TW, "merge_kernel_size": [2, 2],
                            "merge_type": "sd2_tpool", "mm_hidden_size": D, "mm_projector_type": "patchmerger", "patch_size": P,
                            "pos_emb_type": "divided_fixed", "projector_hidden_act": "gelu", "projector_ln_eps": 1e-05,
                            "text_hidden_size": TEXT, "video_attn_type": "spatial_temporal", "vt_hidden_size": D,
                            "vt_intermediate_size": INTER, "vt_num_attention_heads": HEADS, "vt_num_hidden_layers": LAYERS}}
with open("torch-golden/config.json", "w") as f: json.dump(config, f, indent=2)
with open("torch-golden/cases.bin", "wb") as f, torch.no_grad():
    for t, h, w in [(1, 4, 6), (1, 6, 4), (1, 8, 8), (1, 2, 2), (2, 4, 4), (4, 2, 6)]:
        pixels = torch.randn(t * h * w, 3, P, P).float()
        out = forward(pixels.double(), t, h, w)
        f.write(struct.pack("<3i", t, h, w)); f.write(pixels.numpy().astype("<f4").tobytes()); f.write(out.numpy().astype("<f8").tobytes())
