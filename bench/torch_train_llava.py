"""PyTorch side of bench/train.ts: the llava-stage1 train step in eager PyTorch.

Same architecture and dims as the tiny llava-1.5 template's training model with the frozen-prefix cache on: cached
vision features [B, N, Dv] → MLP projector (Linear, GELU, Linear; trains) → scattered into the frozen token embeddings
at the <image> positions → frozen LLaMA decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU, untied head) →
shifted cross-entropy on the caption tokens → AdamW on the projector. Random weights and data of the same shapes
(timing only). Prints ONE JSON object on stdout.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Layer(nn.Module):
    def __init__(self, d, heads, kv_heads, inter, eps):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.input_layernorm = RMSNorm(d, eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.kv_heads, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) / (self.hd ** 0.5) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(a.dv, a.d), nn.GELU(), nn.Linear(a.d, a.d))
        self.embed = nn.Embedding(a.vocab, a.d)
        self.layers = nn.ModuleList([Layer(a.d, a.heads, a.kv_heads, a.inter, a.eps) for _ in range(a.layers)])
        self.norm = RMSNorm(a.d, a.eps)
        self.lm_head = nn.Linear(a.d, a.vocab, bias=False)
        hd = a.d // a.heads
        inv = 1.0 / (a.theta ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(a.t).float(), inv)
        emb = torch.cat([freqs, freqs], -1)
        self.register_buffer("cos", emb.cos()[None, None])
        self.register_buffer("sin", emb.sin()[None, None])

    def forward(self, feats, ids, image_mask, attn_mask, labels):
        x = self.embed(ids)
        x = x.masked_scatter(image_mask.unsqueeze(-1), self.proj(feats).reshape(-1, x.shape[-1]).to(x.dtype))
        T = ids.shape[1]
        causal = torch.full((T, T), float("-inf")).triu(1)
        mask = causal[None, None] + (1.0 - attn_mask[:, None, None, :].float()) * -1e9
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def main():
    p = argparse.ArgumentParser()
    for name in ["b", "t", "n", "dv", "d", "layers", "heads", "kv_heads", "inter", "vocab", "steps", "warmup", "threads"]:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, required=True)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--theta", type=float, default=10000.0)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    model = Model(a)
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("proj."))
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3, weight_decay=0.0)
    feats = torch.randn(a.b, a.n, a.dv)
    ids = torch.randint(13, a.vocab, (a.b, a.t))
    image_mask = torch.zeros(a.b, a.t, dtype=torch.bool)
    image_mask[:, 1 : 1 + a.n] = True
    attn_mask = torch.ones(a.b, a.t, dtype=torch.long)
    labels = ids.clone()
    labels[:, : 1 + a.n] = -100
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(feats, ids, image_mask, attn_mask, labels)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    step_ms = statistics.median(times)
    # Calibration: how fast this PyTorch build multiplies matrices (Debian's has no MKL).
    m = torch.randn(512, 512)
    t0 = time.perf_counter()
    for _ in range(5):
        m @ m
    gflops = 5 * 2 * 512 ** 3 / (time.perf_counter() - t0) / 1e9
    print(json.dumps({"step_ms": step_ms, "samples_per_s": a.b / (step_ms / 1000), "loss": float(loss), "torch": torch.__version__, "matmul_gflops": gflops}))


if __name__ == "__main__":
    main()
