"""PyTorch side of bench/train-step.ts.

Rebuilds the two reference fixtures (gpt2_tiny, vit_tiny) as PyTorch modules with exactly their architecture and
parameter names, loads the fixture weights (a safetensors file dumped by the TS bench), checks the module reproduces
the fixture's reference output, exports it with torch.onnx.export at other batch sizes (the fixtures bake batch 2
into their Reshape constants), and times the eager train step (forward + weighted-sum loss + backward + AdamW).

Prints ONE JSON object on stdout; progress goes to stderr. Uses only the standard library and torch.
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

# Fixture facts the weights do not carry (read off the ONNX graphs: Reshape constants and the attention scale √8).
HEADS = 4
LN_EPS = 1e-5
GPT2_SEQ = 8  # the export traced T = 8 (position ids and the causal mask are constants of that size)
VIT_IMAGE = 16

ST_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


def log(msg):
    print(f"[torch] {msg}", file=sys.stderr, flush=True)


def read_safetensors(path):
    """Minimal safetensors reader (8-byte LE header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    body = data[8 + n :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = ST_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= len(body):
            raise ValueError(f"{path}: tensor '{name}' data_offsets [{begin}, {end}] out of range")
        raw = bytearray(body[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(entry["shape"]).clone()
    return out


# ---------------------------------------------------------------- gpt2_tiny: GPT-2-style decoder, tied LM head


class ManualLayerNorm(nn.Module):
    """The GPT-2 fixture spells LayerNorm out (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add)."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(-1, keepdim=True)
        return centred / torch.sqrt(var + LN_EPS) * self.weight + self.bias


class GPT2Block(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.ln_1 = ManualLayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        self.ln_2 = ManualLayerNorm(dim)
        self.c_fc = nn.Linear(dim, hidden)
        self.mlp_proj = nn.Linear(hidden, dim)

    def attention(self, x):
        b, t, c = x.size()
        hd = c // HEADS
        q, k, v = self.c_attn(x).split(c, dim=2)
        q = q.view(b, t, HEADS, hd).transpose(1, 2)
        k = k.view(b, t, HEADS, hd).transpose(1, 2)
        v = v.view(b, t, HEADS, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2Tiny(nn.Module):
    def __init__(self, vocab, positions, dim, hidden, layers):
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(positions, dim)
        self.h = nn.ModuleList([GPT2Block(dim, hidden) for _ in range(layers)])
        self.ln_f = ManualLayerNorm(dim)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.size(1)).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied LM head


def gpt2_from_weights(w):
    layers = len({k.split(".")[1] for k in w if k.startswith("h.")})
    vocab, dim = w["wte.weight"].shape
    return GPT2Tiny(vocab, w["wpe.weight"].shape[0], dim, w["h.0.c_fc.weight"].shape[0], layers)


# ---------------------------------------------------------------- vit_tiny: ViT with pre-LN blocks


class ViTBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def attention(self, x):
        b, n, c = x.shape
        hd = c // HEADS
        qkv = self.qkv(x).reshape(b, n, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, c))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))  # erf GELU


class ViTTiny(nn.Module):
    def __init__(self, dim, patch, tokens, hidden, layers):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList([ViTBlock(dim, hidden) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, pixel_values):
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def vit_from_weights(w):
    layers = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    dim, _, patch, _ = w["patch_embed.weight"].shape
    return ViTTiny(dim, patch, w["pos_embed"].shape[1], w["blocks.0.fc1.weight"].shape[0], layers)


# ---------------------------------------------------------------- per-model facts


MODELS = {
    "gpt2_tiny": {
        "build": gpt2_from_weights,
        "input": "input_ids",
        "output": "logits",
        "opset": 14,
        "make_input": lambda module, b, g: torch.randint(0, module.wte.num_embeddings, (b, GPT2_SEQ), generator=g),
    },
    "vit_tiny": {
        "build": vit_from_weights,
        "input": "pixel_values",
        "output": "last_hidden_state",
        "opset": 17,
        "make_input": lambda module, b, g: torch.randn(b, 3, VIT_IMAGE, VIT_IMAGE, generator=g),
    },
}


def load_module(name, weights_path):
    spec = MODELS[name]
    weights = read_safetensors(weights_path)
    module = spec["build"](weights)
    expected = dict(module.named_parameters())
    missing = sorted(set(weights) - set(expected))
    unused = sorted(set(expected) - set(weights))
    if missing or unused:
        raise ValueError(f"{name}: fixture initializers {missing} have no module parameter; parameters {unused} no weight")
    with torch.no_grad():
        for key, p in expected.items():
            if tuple(p.shape) != tuple(weights[key].shape):
                raise ValueError(f"{name}: '{key}' is {tuple(weights[key].shape)} in the fixture, {tuple(p.shape)} here")
            p.copy_(weights[key])
    return module


def verify(name, module, ref_path):
    spec = MODELS[name]
    ref = read_safetensors(ref_path)
    with torch.no_grad():
        out = module(ref["input." + spec["input"]])
    return float((out - ref["output." + spec["output"]]).abs().max())


def export(name, module, batch, path):
    spec = MODELS[name]
    x = spec["make_input"](module, batch, torch.Generator().manual_seed(batch))
    module.eval()
    torch.onnx.export(
        module,
        (x,),
        path,
        input_names=[spec["input"]],
        output_names=[spec["output"]],
        opset_version=spec["opset"],
        do_constant_folding=False,
    )


def time_ms(fn, steps, warmup):
    """(median, fastest) wall time of fn in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), min(times)


def time_batch(name, module, batch, steps, warmup):
    """Eager forward (no_grad) and train-step times. The module is trained in place (weights drift; timing only)."""
    spec = MODELS[name]
    g = torch.Generator().manual_seed(1000 + batch)
    x = spec["make_input"](module, batch, g)
    with torch.no_grad():
        weight = torch.randn(module(x).shape, generator=g)
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    module.train()

    def forward():
        with torch.no_grad():
            (module(x) * weight).sum()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = (module(x) * weight).sum()
        loss.backward()
        opt.step()

    fwd, fwd_min = time_ms(forward, steps, warmup)
    step, step_min = time_ms(train_step, steps, warmup)
    return {"batch": batch, "forwardMs": fwd, "stepMs": step, "forwardMinMs": fwd_min, "stepMinMs": step_min}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True, help="folder with <model>.params.safetensors; exports are written here")
    ap.add_argument("--fixtures", required=True, help="folder with <model>.ref.safetensors")
    ap.add_argument("--models", default="gpt2_tiny,vit_tiny")
    ap.add_argument("--export-batches", default="1,4,8")
    ap.add_argument("--time-batches", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-error", type=float, default=1e-4, help="largest allowed |module − reference output|")
    args = ap.parse_args()

    # The tracer warns that √head_dim becomes a constant: the fixture baked it in the same way.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "models": []}
    for name in args.models.split(","):
        if name not in MODELS:
            raise ValueError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
        module = load_module(name, os.path.join(args.work, f"{name}.params.safetensors"))
        err = verify(name, module, os.path.join(args.fixtures, f"{name}.ref.safetensors"))
        log(f"{name}: max |module − reference output| = {err:.3g}")
        if not err <= args.max_error:
            raise ValueError(f"{name}: the PyTorch module does not reproduce the fixture (max abs error {err:.3g})")
        exports = []
        for b in [int(s) for s in args.export_batches.split(",") if s]:
            path = os.path.join(args.work, f"{name}_b{b}.onnx")
            export(name, module, b, path)
            exports.append({"batch": b, "path": path})
        log(f"{name}: exported batches {[e['batch'] for e in exports]}")
        timings = []
        for b in [int(s) for s in args.time_batches.split(",") if s]:
            t = time_batch(name, module, b, args.steps, args.warmup)
            log(f"{name} batch {b}: forward {t['forwardMs']:.3f} ms, train step {t['stepMs']:.3f} ms (medians)")
            timings.append(t)
        result["models"].append({"model": name, "maxAbsError": err, "exports": exports, "timings": timings})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
