#!/usr/bin/env python3
"""Builds tiny PyTorch models of typical architectures, exports them with torch.onnx.export and writes
NAME.onnx + NAME.ref.safetensors in the reference-fixture format of shared/fixtures/README.md:

  input.<graph input>    the inputs used (float32 / int64)
  output.<graph output>  PyTorch's outputs for them
  lossweight.<output>    fixed random weights; L = sum(output * lossweight) (absent for a scalar-loss output)
  grad.<name>            dL/d(name) from torch.autograd for every parameter (initializer) and every float input
  __metadata__           opset, ops (op types in the exported graph), loss

Usage: /usr/bin/python3 tools/make_fixtures.py [OUT_DIR] [--only NAME,NAME]
(default OUT_DIR: electron/autodiff/testdata). Needs only torch (numpy optional); safetensors is written by hand
and the ONNX file is read back with a minimal protobuf reader, so neither the onnx nor the safetensors package
is required. Everything is seeded, so rerunning reproduces the same files on the same PyTorch build.
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# PyTorch 1.13's GELU backward is wrong when its incoming gradient is not contiguous (e.g. GELU followed by a
# permute, as in Whisper's Conv1d stem): references are computed with a hook that makes that gradient contiguous.
# Every reference is also cross-checked against a float64 recomputation (see check_against_float64).
_gelu = F.gelu


def _gelu_contiguous_grad(x, approximate='none'):
    y = _gelu(x, approximate=approximate)
    if y.requires_grad and not torch.jit.is_tracing():
        y.register_hook(lambda g: g.contiguous())
    return y


F.gelu = _gelu_contiguous_grad

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'electron', 'autodiff', 'testdata')
F32_MIN = torch.finfo(torch.float32).min


# ----------------------------------------------------------------------------------------------------------------
# Minimal ONNX protobuf reader: op types, initializer names, graph inputs/outputs and the opset.
# ----------------------------------------------------------------------------------------------------------------

def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) for one message; length-delimited values are bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield field, wire, value


def read_onnx_summary(path):
    with open(path, 'rb') as f:
        model = f.read()
    summary = {'ops': set(), 'initializers': set(), 'inputs': [], 'outputs': [], 'opset': None}
    for field, _, value in _fields(model):
        if field == 8:  # opset_import
            domain, version = '', None
            for f2, _, v2 in _fields(value):
                if f2 == 1:
                    domain = v2.decode()
                elif f2 == 2:
                    version = v2
            if domain in ('', 'ai.onnx'):
                summary['opset'] = version
        elif field == 7:  # graph
            for f2, _, v2 in _fields(value):
                if f2 == 1:  # node
                    for f3, _, v3 in _fields(v2):
                        if f3 == 4:
                            summary['ops'].add(v3.decode())
                elif f2 == 5:  # initializer
                    for f3, _, v3 in _fields(v2):
                        if f3 == 8:
                            summary['initializers'].add(v3.decode())
                elif f2 in (11, 12):  # input, output
                    for f3, _, v3 in _fields(v2):
                        if f3 == 1:
                            summary['inputs' if f2 == 11 else 'outputs'].append(v3.decode())
    return summary


# ----------------------------------------------------------------------------------------------------------------
# safetensors writer
# ----------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {torch.float32: ('F32', 'f'), torch.int64: ('I64', 'q')}


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': {k: str(v) for k, v in metadata.items()}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype not in _ST_DTYPES:
            raise ValueError(f'tensor {name}: dtype {t.dtype} is not written by this tool')
        code, fmt = _ST_DTYPES[t.dtype]
        flat = t.reshape(-1).tolist()
        blob = struct.pack(f'<{len(flat)}{fmt}', *flat)
        header[name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)  # align the data section to 8 bytes
    with open(path + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(path + '.tmp', path)


# ----------------------------------------------------------------------------------------------------------------
# Export + reference
# ----------------------------------------------------------------------------------------------------------------

def jitter_parameters(model, seed):
    """Moves norm scales away from 1 and biases away from 0, so their gradients are exercised in general position."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit('.', 1)[-1]
            is_norm = any(k in name for k in ('norm', 'ln', 'LayerNorm', 'layernorm')) and leaf == 'weight' and p.dim() == 1
            if is_norm:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif leaf == 'bias':
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def check_against_float64(name, model, inputs, output_names, weights, wrt_names, grads):
    """Recomputes the gradients in float64 and refuses a float32 reference that disagrees beyond rounding noise
    (guards against PyTorch kernel bugs such as the GELU one above)."""
    # In place (float32 → float64 → float32 is exact); a deep copy fails on modules holding non-leaf tensors
    # (weight_norm's computed weight).
    m64 = model.double()
    try:
        _float64_gradients(name, m64, inputs, output_names, weights, wrt_names, grads)
    finally:
        model.float()


def _float64_gradients(name, m64, inputs, output_names, weights, wrt_names, grads):
    ins = {k: (v.double().requires_grad_(True) if v.is_floating_point() else v.clone()) for k, v in inputs.items()}
    outs = m64(*ins.values())
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    loss = 0
    for out_name, y in zip(output_names, outs):
        loss = loss + ((y * weights[out_name].double()).sum() if out_name in weights else y)
    params = dict(m64.named_parameters())
    leaves = [params[k] if k in params else ins[k] for k in wrt_names]
    g64 = torch.autograd.grad(loss, leaves, allow_unused=True)
    worst = (0.0, '')
    for k, g32, g in zip(wrt_names, grads, g64):
        if g32 is None or g is None:
            continue
        # In units of the checker's default tolerance (|err| <= 1e-5 + 1e-3·|truth|).
        ratio = ((g32.double() - g).abs() / (1e-5 + 1e-3 * g.abs())).max().item()
        worst = max(worst, (ratio, k))
    print(f'{name}: float32 reference vs float64 recomputation: worst error {worst[0]:.2f} x tolerance ({worst[1]})')
    if worst[0] > 1:
        raise RuntimeError(f'{name}: the float32 reference gradient of {worst[1]} is {worst[0]:.1f}x the default '
                           'tolerance away from float64: change the inputs so the reference is well-conditioned')


def export_fixture(out_dir, name, model, inputs, output_names, opset, description, dynamic_axes=None, seed=0,
                   training=torch.onnx.TrainingMode.EVAL):
    """inputs: ordered dict graph-input name -> tensor. A single scalar output is taken as the loss itself."""
    model.eval()
    onnx_path = os.path.join(out_dir, f'{name}.onnx')
    args = tuple(inputs.values())
    torch.onnx.export(
        model,
        args,
        onnx_path,
        input_names=list(inputs.keys()),
        output_names=output_names,
        opset_version=opset,
        do_constant_folding=False,
        dynamic_axes=dynamic_axes or {},
        training=training,
    )
    summary = read_onnx_summary(onnx_path)
    missing_inputs = [k for k in inputs if k not in summary['inputs']]
    if missing_inputs:
        raise RuntimeError(f'{name}: inputs {missing_inputs} were dropped by the exporter (unused?)')

    # Reference: float inputs require grad; loss = the scalar output or sum(output * lossweight).
    ref_inputs = {k: (v.clone().requires_grad_(True) if v.is_floating_point() else v.clone()) for k, v in inputs.items()}
    outs = model(*ref_inputs.values())
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    outs = dict(zip(output_names, outs))
    g = torch.Generator().manual_seed(1000 + seed)
    weights = {}
    loss = 0
    for out_name, y in outs.items():
        if y.dim() == 0 and len(outs) == 1:
            loss = loss + y
        else:
            w = torch.randn(y.shape, generator=g)
            weights[out_name] = w
            loss = loss + (y * w).sum()
    params = dict(model.named_parameters())
    named = {k: p for k, p in params.items() if k in summary['initializers']}
    not_named = sorted(k for k in params if k not in summary['initializers'])
    float_inputs = {k: v for k, v in ref_inputs.items() if v.is_floating_point()}
    wrt = {**named, **float_inputs}
    grads = torch.autograd.grad(loss, list(wrt.values()), allow_unused=True)

    check_against_float64(name, model, inputs, output_names, weights, list(wrt.keys()), grads)

    tensors = {}
    for k, v in inputs.items():
        tensors[f'input.{k}'] = v
    for k, v in outs.items():
        tensors[f'output.{k}'] = v.detach()
    for k, w in weights.items():
        tensors[f'lossweight.{k}'] = w
    for (k, p), gk in zip(wrt.items(), grads):
        tensors[f'grad.{k}'] = gk if gk is not None else torch.zeros_like(p)
    metadata = {
        'opset': summary['opset'],
        'ops': ','.join(sorted(summary['ops'])),
        'loss': 'the scalar output itself' if not weights else 'sum over outputs of output*lossweight',
        'description': description,
        'params_not_named_in_onnx': ','.join(not_named),
    }
    write_safetensors(os.path.join(out_dir, f'{name}.ref.safetensors'), tensors, metadata)
    sizes = os.path.getsize(onnx_path), os.path.getsize(os.path.join(out_dir, f'{name}.ref.safetensors'))
    print(f'{name}: opset {summary["opset"]}, {len(summary["ops"])} op types, {len(named)} params, '
          f'{len(float_inputs)} float inputs, onnx {sizes[0]} B, ref {sizes[1]} B'
          + (f', NOT NAMED: {not_named}' if not_named else ''))


# ----------------------------------------------------------------------------------------------------------------
# Shared attention pieces
# ----------------------------------------------------------------------------------------------------------------

def split_heads(x, heads):
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)


def merge_heads(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class MultiHeadAttention(nn.Module):
    """Q from x, K/V from `context` (self-attention when context is x); additive float mask [B,1,Tq,Tk] or None."""

    def __init__(self, dim, heads, context_dim=None, bias=True):
        super().__init__()
        context_dim = context_dim or dim
        self.heads = heads
        self.query = nn.Linear(dim, dim, bias=bias)
        self.key = nn.Linear(context_dim, dim, bias=bias)
        self.value = nn.Linear(context_dim, dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)

    def forward(self, x, context=None, mask=None):
        context = x if context is None else context
        q = split_heads(self.query(x), self.heads)
        k = split_heads(self.key(context), self.heads)
        v = split_heads(self.value(context), self.heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        return self.out(merge_heads(torch.matmul(probs, v)))


# ----------------------------------------------------------------------------------------------------------------
# BERT: 3 embeddings + LN, extended attention mask, post-LN blocks, erf GELU, tanh pooler (opset 14: primitive LN)
# ----------------------------------------------------------------------------------------------------------------

class BertLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.attention = MultiHeadAttention(d, heads)
        self.attention_norm = nn.LayerNorm(d, eps=1e-12)
        self.intermediate = nn.Linear(d, ff)
        self.output = nn.Linear(ff, d)
        self.output_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask):
        x = self.attention_norm(x + self.attention(x, mask=mask))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, ff=48, layers=2, max_pos=16, types=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(max_pos, d)
        self.token_type_embeddings = nn.Embedding(types, d)
        self.embeddings_norm = nn.LayerNorm(d, eps=1e-12)
        self.register_buffer('position_ids', torch.arange(max_pos).unsqueeze(0))
        self.layers = nn.ModuleList([BertLayer(d, heads, ff) for _ in range(layers)])
        self.pooler = nn.Linear(d, d)

    def forward(self, input_ids, attention_mask, token_type_ids):
        t = input_ids.shape[1]
        pos = self.position_ids[:, :t]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) + self.position_embeddings(pos)
        x = self.embeddings_norm(x)
        ext = attention_mask[:, None, None, :].to(x.dtype)
        ext = (1.0 - ext) * F32_MIN
        for layer in self.layers:
            x = layer(x, ext)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return x, pooled


def make_bert(out):
    torch.manual_seed(1)
    m = BertTiny()
    jitter_parameters(m, 1)
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    types = torch.zeros(2, 8, dtype=torch.int64)
    types[:, 4:] = 1
    export_fixture(
        out, 'bert_tiny', m, {'input_ids': ids, 'attention_mask': mask, 'token_type_ids': types},
        ['last_hidden_state', 'pooler_output'], 14,
        'BERT-style encoder: word+position+token-type embeddings, padding mask, erf GELU, post-LN, tanh pooler',
        dynamic_axes={k: {0: 'batch', 1: 'sequence'} for k in ('input_ids', 'attention_mask', 'token_type_ids')}
        | {'last_hidden_state': {0: 'batch', 1: 'sequence'}, 'pooler_output': {0: 'batch'}},
        seed=1,
    )


# ----------------------------------------------------------------------------------------------------------------
# OPT: positions from cumsum(mask), pre-LN, q scaling, ReLU, causal mask with finfo.min and a Max clamp, tied head
# ----------------------------------------------------------------------------------------------------------------

class OptAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.scaling = (d // heads) ** -0.5
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q = split_heads(self.q_proj(x) * self.scaling, self.heads).reshape(b * self.heads, t, -1)
        k = split_heads(self.k_proj(x), self.heads).reshape(b * self.heads, t, -1)
        v = split_heads(self.v_proj(x), self.heads).reshape(b * self.heads, t, -1)
        w = torch.bmm(q, k.transpose(1, 2)).view(b, self.heads, t, t) + mask
        w = torch.max(w, torch.tensor(F32_MIN))
        w = F.softmax(w.view(b * self.heads, t, t), dim=-1)
        o = torch.bmm(w, v).view(b, self.heads, t, -1).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(o)


class OptLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = OptAttention(d, heads)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)

    def forward(self, x, mask):
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
        return x + self.fc2(F.relu(self.fc1(self.final_layer_norm(x))))


class OptTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, ff=64, layers=2, max_pos=16):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.embed_positions = nn.Embedding(max_pos + 2, d)  # OPT's learned positions have an offset of 2
        self.layers = nn.ModuleList([OptLayer(d, heads, ff) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        positions = (torch.cumsum(attention_mask, dim=1).type_as(attention_mask) * attention_mask).long() - 1
        x = self.embed_tokens(input_ids) + self.embed_positions(positions + 2)
        causal = torch.full((t, t), F32_MIN)
        cond = torch.arange(t)
        causal = causal.masked_fill(cond < (cond + 1).view(t, 1), 0.0)
        causal = causal[None, None, :, :].expand(b, 1, t, t)
        inverted = 1.0 - attention_mask[:, None, None, :].expand(b, 1, t, t).to(x.dtype)
        padding = inverted.masked_fill(inverted.to(torch.bool), F32_MIN)
        mask = causal + padding
        for layer in self.layers:
            x = layer(x, mask)
        return self.lm_head(self.final_layer_norm(x))


def make_opt(out):
    torch.manual_seed(2)
    m = OptTiny()
    jitter_parameters(m, 2)
    with torch.no_grad():
        m.embed_tokens.weight.mul_(0.5)  # keeps the tied-head logits moderate
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 6:] = 0
    export_fixture(
        out, 'opt_tiny', m, {'input_ids': ids, 'attention_mask': mask}, ['logits'], 17,
        'OPT-style decoder: learned positions from cumsum(mask), causal+padding mask at finfo.min with Max clamp, '
        'q scaling, ReLU, pre-LN (LayerNormalization op), tied LM head',
        dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                      'logits': {0: 'batch', 1: 'sequence'}},
        seed=2,
    )


# ----------------------------------------------------------------------------------------------------------------
# LLaMA: RMSNorm, rotary embeddings from a cos/sin buffer, SwiGLU, GQA via repeat_kv, no biases
# ----------------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x / torch.sqrt(variance + self.eps)
        return self.weight * x


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    b, kv, t, d = x.shape
    return x[:, :, None, :, :].expand(b, kv, n_rep, t, d).reshape(b, kv * n_rep, t, d)


class LlamaAttention(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = repeat_kv(k, self.heads // self.kv_heads)
        v = repeat_kv(v, self.heads // self.kv_heads)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o)


class LlamaLayer(nn.Module):
    def __init__(self, d, heads, kv_heads, ff):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = LlamaAttention(d, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class LlamaTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, kv_heads=2, ff=48, layers=2, max_pos=16):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([LlamaLayer(d, heads, kv_heads, ff) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        head_dim = d // heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        freqs = torch.outer(torch.arange(max_pos).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer('cos_cached', emb.cos())
        self.register_buffer('sin_cached', emb.sin())

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        x = self.embed_tokens(input_ids)
        position_ids = torch.arange(t).unsqueeze(0).expand(b, t)
        cos = self.cos_cached[:t][position_ids].unsqueeze(1)
        sin = self.sin_cached[:t][position_ids].unsqueeze(1)
        causal = torch.triu(torch.full((t, t), F32_MIN), diagonal=1)
        padding = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * F32_MIN
        mask = torch.clamp(causal[None, None] + padding, min=F32_MIN)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


def make_llama(out):
    torch.manual_seed(3)
    m = LlamaTiny()
    jitter_parameters(m, 3)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, RMSNorm):
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape))
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[0, 7:] = 0
    export_fixture(
        out, 'llama_tiny', m, {'input_ids': ids, 'attention_mask': mask}, ['logits'], 14,
        'LLaMA-style decoder: RMSNorm (Pow/ReduceMean/Sqrt/Div), rotary with rotate_half and cos/sin buffers, '
        'SwiGLU, GQA (repeat_kv Expand/Reshape), no biases',
        dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                      'logits': {0: 'batch', 1: 'sequence'}},
        seed=3,
    )


# ----------------------------------------------------------------------------------------------------------------
# CLIP text encoder: causal mask, pre-LN, quick_gelu, argmax-EOS pooling with a Range batch index, projection
# ----------------------------------------------------------------------------------------------------------------

class ClipLayer(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, heads)
        self.layer_norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask=mask)
        h = self.fc1(self.layer_norm2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class ClipTextTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, ff=64, layers=2, max_pos=16, proj=24):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = nn.Embedding(max_pos, d)
        self.register_buffer('position_ids', torch.arange(max_pos).unsqueeze(0))
        self.layers = nn.ModuleList([ClipLayer(d, heads, ff) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)
        self.text_projection = nn.Linear(d, proj, bias=False)

    def encode(self, input_ids):
        b, t = input_ids.shape
        x = self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, :t])
        mask = torch.empty(b, t, t).fill_(F32_MIN).triu_(1).unsqueeze(1)
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_layer_norm(x)
        pooled = x[torch.arange(b), input_ids.to(torch.int).argmax(dim=-1)]
        return x, self.text_projection(pooled)

    def forward(self, input_ids):
        return self.encode(input_ids)


def clip_text_ids(b, t, vocab, eos_at):
    ids = torch.randint(1, vocab - 1, (b, t))
    for i, pos in enumerate(eos_at):
        ids[i, pos] = vocab - 1  # EOS has the largest id, as in CLIP's tokenizer
        ids[i, pos + 1:] = 0
    return ids


def make_clip_text(out):
    torch.manual_seed(4)
    m = ClipTextTiny()
    jitter_parameters(m, 4)
    ids = clip_text_ids(2, 8, 64, [7, 4])
    export_fixture(
        out, 'clip_text_tiny', m, {'input_ids': ids}, ['last_hidden_state', 'text_embeds'], 14,
        'CLIP text encoder: causal mask (Trilu), pre-LN, quick_gelu, argmax-EOS pooling with Range batch index, '
        'text projection',
        seed=4,
    )


# ----------------------------------------------------------------------------------------------------------------
# CLIP contrastive loss (scalar output): two towers, normalised embeddings, exp(logit_scale), symmetric CE
# ----------------------------------------------------------------------------------------------------------------

class ClipVisionTiny(nn.Module):
    def __init__(self, d=32, heads=4, ff=64, patch=8, image=16, proj=24):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, d, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.5)
        self.position_embedding = nn.Embedding((image // patch) ** 2 + 1, d)
        self.register_buffer('position_ids', torch.arange((image // patch) ** 2 + 1).unsqueeze(0))
        self.pre_layrnorm = nn.LayerNorm(d)
        self.layer = ClipLayer(d, heads, ff)
        self.post_layernorm = nn.LayerNorm(d)
        self.visual_projection = nn.Linear(d, proj, bias=False)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        p = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        x = torch.cat([cls, p], dim=1) + self.position_embedding(self.position_ids)
        x = self.layer(self.pre_layrnorm(x))
        return self.visual_projection(self.post_layernorm(x[:, 0, :]))


class ClipContrastive(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision = ClipVisionTiny(ff=32)
        self.text = ClipTextTiny(layers=1, ff=32)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, pixel_values, input_ids):
        image = self.vision(pixel_values)
        _, text = self.text.encode(input_ids)
        image = image / image.norm(p=2, dim=-1, keepdim=True)
        text = text / text.norm(p=2, dim=-1, keepdim=True)
        logits_per_text = torch.matmul(text, image.t()) * self.logit_scale.exp()
        logits_per_image = logits_per_text.t()
        labels = torch.arange(logits_per_text.shape[0])
        return (F.cross_entropy(logits_per_text, labels) + F.cross_entropy(logits_per_image, labels)) / 2


def make_clip_contrastive(out):
    torch.manual_seed(5)
    m = ClipContrastive()
    jitter_parameters(m, 5)
    pixels = torch.randn(3, 3, 16, 16)
    ids = clip_text_ids(3, 8, 64, [7, 3, 5])
    export_fixture(
        out, 'clip_contrastive', m, {'pixel_values': pixels, 'input_ids': ids}, ['loss'], 17,
        'CLIP contrastive loss (scalar output): vision+text towers, L2-normalised embeddings, exp(logit_scale), '
        'symmetric cross-entropy',
        seed=5,
    )


# ----------------------------------------------------------------------------------------------------------------
# OPT LM loss (scalar output): shifted next-token loss with log_softmax + nll_loss and an ignore_index
# ----------------------------------------------------------------------------------------------------------------

class OptLmLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = OptTiny(layers=1)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.model(input_ids, attention_mask)
        logp = F.log_softmax(logits[:, :-1, :], dim=-1)
        return F.nll_loss(logp.reshape(-1, logp.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def make_opt_lm_loss(out):
    torch.manual_seed(6)
    m = OptLmLoss()
    jitter_parameters(m, 6)
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 6:] = 0
    labels = ids.clone()
    labels[1, 6:] = -100
    export_fixture(
        out, 'opt_lm_loss', m, {'input_ids': ids, 'attention_mask': mask, 'labels': labels}, ['loss'], 14,
        'OPT-style decoder with its next-token loss as the scalar output: log_softmax + nll_loss(ignore_index=-100)',
        seed=6,
    )


# ----------------------------------------------------------------------------------------------------------------
# BLIP-2 Q-Former layer: learned queries, self-attention, cross-attention to image features, FFN, post-LN
# ----------------------------------------------------------------------------------------------------------------

class QFormerLayer(nn.Module):
    def __init__(self, d=32, heads=4, ff=64, image_dim=40, queries=8):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, queries, d) * 0.5)
        self.layernorm = nn.LayerNorm(d, eps=1e-12)
        self.attention = MultiHeadAttention(d, heads)
        self.attention_norm = nn.LayerNorm(d, eps=1e-12)
        self.crossattention = MultiHeadAttention(d, heads, context_dim=image_dim)
        self.crossattention_norm = nn.LayerNorm(d, eps=1e-12)
        self.intermediate_query = nn.Linear(d, ff)
        self.output_query = nn.Linear(ff, d)
        self.output_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, image_embeds):
        b = image_embeds.shape[0]
        x = self.layernorm(self.query_tokens.expand(b, -1, -1))
        x = self.attention_norm(x + self.attention(x))
        x = self.crossattention_norm(x + self.crossattention(x, context=image_embeds))
        return self.output_norm(x + self.output_query(F.gelu(self.intermediate_query(x))))


def make_qformer(out):
    torch.manual_seed(7)
    m = QFormerLayer()
    jitter_parameters(m, 7)
    image = torch.randn(2, 17, 40)
    export_fixture(
        out, 'qformer_layer', m, {'image_embeds': image}, ['last_hidden_state'], 17,
        'BLIP-2 Q-Former layer: learned queries, self-attention, cross-attention to image features, erf-GELU FFN, post-LN',
        dynamic_axes={'image_embeds': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}},
        seed=7,
    )


# ----------------------------------------------------------------------------------------------------------------
# Stable-Diffusion UNet up block: timestep embedding, ResNet block (GroupNorm, SiLU, Conv, time projection),
# transformer block (self-attn, cross-attn to text, GEGLU), nearest Upsample (Resize) + Conv
# ----------------------------------------------------------------------------------------------------------------

def timestep_embedding(timesteps, dim):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=timesteps.dtype) / half
    args = timesteps[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResnetBlock(nn.Module):
    def __init__(self, c, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, c)
        self.norm2 = nn.GroupNorm(groups, c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class GEGLU(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.proj = nn.Linear(d, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class Transformer2D(nn.Module):
    def __init__(self, c, heads, context_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.norm1 = nn.LayerNorm(c)
        self.attn1 = MultiHeadAttention(c, heads, bias=False)
        self.norm2 = nn.LayerNorm(c)
        self.attn2 = MultiHeadAttention(c, heads, context_dim=context_dim, bias=False)
        self.norm3 = nn.LayerNorm(c)
        self.ff_in = GEGLU(c, 2 * c)
        self.ff_out = nn.Linear(2 * c, c)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x, context):
        b, c, hgt, wid = x.shape
        h = self.proj_in(self.norm(x))
        h = h.permute(0, 2, 3, 1).reshape(b, hgt * wid, c)
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), context=context)
        h = h + self.ff_out(self.ff_in(self.norm3(h)))
        h = h.reshape(b, hgt, wid, c).permute(0, 3, 1, 2)
        return x + self.proj_out(h)


class UNetUpBlock(nn.Module):
    def __init__(self, c=16, groups=4, heads=2, context_dim=24, temb_in=16, temb=32):
        super().__init__()
        self.temb_in = temb_in
        self.time_linear_1 = nn.Linear(temb_in, temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        self.resnet = ResnetBlock(c, temb, groups)
        self.attention = Transformer2D(c, heads, context_dim, groups)
        self.upsample_conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        temb = self.time_linear_2(F.silu(self.time_linear_1(timestep_embedding(timestep, self.temb_in))))
        x = self.resnet(sample, temb)
        x = self.attention(x, encoder_hidden_states)
        x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        return self.upsample_conv(x)


def make_unet(out):
    torch.manual_seed(8)
    m = UNetUpBlock()
    jitter_parameters(m, 8)
    sample = torch.randn(2, 16, 6, 6)
    # Small timesteps keep sin/cos of t·freq well-conditioned in float32 (d/dt is compared too).
    timestep = torch.tensor([3.0, 17.5])
    context = torch.randn(2, 5, 24)
    export_fixture(
        out, 'unet_block', m, {'sample': sample, 'timestep': timestep, 'encoder_hidden_states': context}, ['out_sample'],
        17,
        'Stable-Diffusion-style UNet up block: sinusoidal timestep embedding + Linear, ResNet block (GroupNorm, SiLU, '
        'Conv), transformer block with cross-attention and GEGLU, nearest Upsample (Resize) + Conv',
        seed=8,
    )


# ----------------------------------------------------------------------------------------------------------------
# Perceiver resampler block (Flamingo / IDEFICS): latents attend to [media; latents], FFN, final LN
# ----------------------------------------------------------------------------------------------------------------

class PerceiverAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm_media = nn.LayerNorm(d)
        self.norm_latents = nn.LayerNorm(d)
        self.to_q = nn.Linear(d, d, bias=False)
        self.to_kv = nn.Linear(d, 2 * d, bias=False)
        self.to_out = nn.Linear(d, d, bias=False)

    def forward(self, media, latents):
        media = self.norm_media(media)
        latents = self.norm_latents(latents)
        q = split_heads(self.to_q(latents), self.heads)
        k, v = self.to_kv(torch.cat((media, latents), dim=-2)).chunk(2, dim=-1)
        k, v = split_heads(k, self.heads), split_heads(v, self.heads)
        q = q * (q.shape[-1] ** -0.5)
        sim = torch.einsum('bhid,bhjd->bhij', q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        return self.to_out(merge_heads(torch.einsum('bhij,bhjd->bhid', attn, v)))


class PerceiverResampler(nn.Module):
    def __init__(self, d=32, heads=4, latents=6, layers=1, mult=2):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(latents, d) * 0.5)
        self.attn = nn.ModuleList([PerceiverAttention(d, heads) for _ in range(layers)])
        self.ff_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.ff_in = nn.ModuleList([nn.Linear(d, mult * d, bias=False) for _ in range(layers)])
        self.ff_out = nn.ModuleList([nn.Linear(mult * d, d, bias=False) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)

    def forward(self, image_features):
        b = image_features.shape[0]
        x = self.latents.unsqueeze(0).repeat(b, 1, 1)
        for attn, norm, fin, fout in zip(self.attn, self.ff_norm, self.ff_in, self.ff_out):
            x = attn(image_features, x) + x
            x = fout(F.gelu(fin(norm(x)))) + x
        return self.norm(x)


def make_perceiver(out):
    torch.manual_seed(9)
    m = PerceiverResampler()
    jitter_parameters(m, 9)
    feats = torch.randn(2, 10, 32)
    export_fixture(
        out, 'perceiver_resampler', m, {'image_features': feats}, ['latents_out'], 14,
        'Perceiver resampler (Flamingo): learned latents (Tile/repeat), attention over [media; latents] with Einsum and '
        'a detached max shift, GELU FFN, final LN (opset 14: primitive LN)',
        seed=9,
    )


# ----------------------------------------------------------------------------------------------------------------
# GPT-NeoX / Pythia: fused QKV split by slicing, partial rotary computed at run time, parallel residual,
# tanh-approximate GELU, boolean causal-mask buffer with Where; batch 1 with dynamic axes
# ----------------------------------------------------------------------------------------------------------------

class NeoxLayer(nn.Module):
    def __init__(self, d, heads, max_pos):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.rotary_ndims = self.head_dim // 2
        self.input_layernorm = nn.LayerNorm(d)
        self.post_attention_layernorm = nn.LayerNorm(d)
        self.query_key_value = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)
        self.dense_h_to_4h = nn.Linear(d, 4 * d)
        self.dense_4h_to_h = nn.Linear(4 * d, d)
        self.register_buffer('bias', torch.tril(torch.ones(max_pos, max_pos, dtype=torch.bool)).view(1, 1, max_pos, max_pos))
        self.register_buffer('inv_freq', 1.0 / (10000 ** (torch.arange(0, self.rotary_ndims, 2).float() / self.rotary_ndims)))

    def attention(self, x):
        b, t, _ = x.shape
        qkv = self.query_key_value(x).view(b, t, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv[..., :self.head_dim], qkv[..., self.head_dim:2 * self.head_dim], qkv[..., 2 * self.head_dim:]
        pos = torch.arange(t, dtype=self.inv_freq.dtype)
        freqs = torch.einsum('i,j->ij', pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        r = self.rotary_ndims
        q_rot, q_pass = q[..., :r], q[..., r:]
        k_rot, k_pass = k[..., :r], k[..., r:]
        q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
        k = torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        causal = self.bias[:, :, :t, :t]
        scores = torch.where(causal, scores, torch.tensor(F32_MIN, dtype=scores.dtype))
        probs = F.softmax(scores, dim=-1)
        return self.dense(merge_heads(torch.matmul(probs, v)))

    def forward(self, x):
        mlp = self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(self.post_attention_layernorm(x)), approximate='tanh'))
        return x + self.attention(self.input_layernorm(x)) + mlp


class NeoxTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, layers=1, max_pos=16):
        super().__init__()
        self.embed_in = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([NeoxLayer(d, heads, max_pos) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)
        self.embed_out = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids):
        x = self.embed_in(input_ids)
        for layer in self.layers:
            x = layer(x)
        return self.embed_out(self.final_layer_norm(x))


def make_neox(out):
    torch.manual_seed(10)
    m = NeoxTiny()
    jitter_parameters(m, 10)
    ids = torch.randint(0, 64, (1, 7))
    export_fixture(
        out, 'neox_tiny', m, {'input_ids': ids}, ['logits'], 17,
        'GPT-NeoX-style decoder, batch 1: fused QKV sliced per head, partial rotary computed at run time, parallel '
        'residual, tanh GELU, boolean causal buffer + Where',
        dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'}, 'logits': {0: 'batch', 1: 'sequence'}},
        seed=10,
    )


# ----------------------------------------------------------------------------------------------------------------
# T5 encoder: bucketed relative position bias (Log/Abs/Min/Where on the index path), RMS LayerNorm with rsqrt,
# gated gelu_new FFN, unscaled attention, padding mask
# ----------------------------------------------------------------------------------------------------------------

class T5LayerNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class T5EncoderTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, ff=48, layers=1, buckets=8, max_distance=16):
        super().__init__()
        self.heads, self.buckets, self.max_distance = heads, buckets, max_distance
        self.embed_tokens = nn.Embedding(vocab, d)
        self.relative_attention_bias = nn.Embedding(buckets, heads)
        self.norms1 = nn.ModuleList([T5LayerNorm(d) for _ in range(layers)])
        self.q = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(layers)])
        self.k = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(layers)])
        self.v = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(layers)])
        self.o = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(layers)])
        self.norms2 = nn.ModuleList([T5LayerNorm(d) for _ in range(layers)])
        self.wi_0 = nn.ModuleList([nn.Linear(d, ff, bias=False) for _ in range(layers)])
        self.wi_1 = nn.ModuleList([nn.Linear(d, ff, bias=False) for _ in range(layers)])
        self.wo = nn.ModuleList([nn.Linear(ff, d, bias=False) for _ in range(layers)])
        self.final_layer_norm = T5LayerNorm(d)

    def bucket(self, relative_position):
        n = self.buckets // 2
        ret = (relative_position > 0).to(torch.long) * n
        rel = torch.abs(relative_position)
        max_exact = n // 2
        is_small = rel < max_exact
        large = max_exact + (
            torch.log(rel.float() / max_exact) / math.log(self.max_distance / max_exact) * (n - max_exact)
        ).to(torch.long)
        large = torch.min(large, torch.full_like(large, n - 1))
        return ret + torch.where(is_small, rel, large)

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        ctx = torch.arange(t, dtype=torch.long)[:, None]
        mem = torch.arange(t, dtype=torch.long)[None, :]
        bias = self.relative_attention_bias(self.bucket(mem - ctx)).permute([2, 0, 1]).unsqueeze(0)
        bias = bias + (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * F32_MIN
        x = self.embed_tokens(input_ids)
        for i in range(len(self.q)):
            h = self.norms1[i](x)
            q, k, v = (split_heads(lin[i](h), self.heads) for lin in (self.q, self.k, self.v))
            scores = torch.matmul(q, k.transpose(3, 2)) + bias
            probs = F.softmax(scores.float(), dim=-1).type_as(scores)
            x = x + self.o[i](merge_heads(torch.matmul(probs, v)))
            h = self.norms2[i](x)
            x = x + self.wo[i](gelu_new(self.wi_0[i](h)) * self.wi_1[i](h))
        return self.final_layer_norm(x)


def make_t5(out):
    torch.manual_seed(11)
    m = T5EncoderTiny()
    jitter_parameters(m, 11)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, T5LayerNorm):
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape))
    ids = torch.randint(0, 64, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[0, 6:] = 0
    export_fixture(
        out, 't5_encoder_tiny', m, {'input_ids': ids, 'attention_mask': mask}, ['last_hidden_state'], 14,
        'T5 encoder: bucketed relative position bias, RMS LayerNorm with rsqrt, gated gelu_new FFN, padding mask',
        seed=11,
    )


# ----------------------------------------------------------------------------------------------------------------
# ResNet: strided Conv + BatchNorm (eval) + ReLU + MaxPool, basic blocks with a 1x1 downsample, global pool, fc
# ----------------------------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNetTiny(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.fc = nn.Linear(16, classes)

    def forward(self, pixel_values):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(pixel_values))), 3, stride=2, padding=1)
        x = self.layer2(self.layer1(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def make_resnet(out):
    torch.manual_seed(12)
    m = ResNetTiny()
    jitter_parameters(m, 12)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.num_features))
                mod.running_var.copy_(0.5 + torch.rand(mod.num_features))
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.num_features))
    pixels = torch.randn(2, 3, 20, 20)
    export_fixture(
        out, 'resnet_tiny', m, {'pixel_values': pixels}, ['logits'], 14,
        'ResNet: strided Conv, BatchNorm (inference), ReLU, MaxPool with padding, basic blocks with 1x1 downsample, '
        'global average pool, fc',
        dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}},
        seed=12,
        # EVAL would fold each BatchNorm into its Conv (new unnamed weights); PRESERVE keeps the
        # BatchNormalization nodes (inference mode, since the model is in eval()) and the parameter names.
        training=torch.onnx.TrainingMode.PRESERVE,
    )


# ----------------------------------------------------------------------------------------------------------------
# ConvNeXt block + MobileNetV3 pieces: depthwise 7x7 Conv, channels-last LayerNorm, layer scale, squeeze-excite
# with Hardsigmoid, Hardswish, ReLU6 (Clip), AvgPool
# ----------------------------------------------------------------------------------------------------------------

class ConvNetMix(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 2, stride=2)
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.pwconv2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(0.5 * torch.ones(c))
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.dw3 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1, groups=2 * c)
        self.se_reduce = nn.Conv2d(2 * c, 8, 1)
        self.se_expand = nn.Conv2d(8, 2 * c, 1)
        self.project = nn.Conv2d(2 * c, c, 1)

    def forward(self, pixel_values):
        x = self.stem(pixel_values)
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h))))
        x = x + (self.gamma * h).permute(0, 3, 1, 2)
        h = F.hardswish(self.expand(x))
        h = F.relu6(self.dw3(h))
        s = F.hardsigmoid(self.se_expand(F.relu(self.se_reduce(F.adaptive_avg_pool2d(h, 1)))))
        h = self.project(h * s)
        return F.avg_pool2d(h, 2)


def make_convnet(out):
    torch.manual_seed(13)
    m = ConvNetMix()
    jitter_parameters(m, 13)
    pixels = torch.randn(2, 3, 16, 16)
    export_fixture(
        out, 'convnet_mix', m, {'pixel_values': pixels}, ['features'], 17,
        'ConvNeXt block (depthwise 7x7, channels-last LN, layer scale) + MobileNetV3 inverted residual '
        '(Hardswish, ReLU6, squeeze-excite with Hardsigmoid), AvgPool',
        seed=13,
    )


# ----------------------------------------------------------------------------------------------------------------
# torch.nn built-ins: TransformerEncoderLayer (norm_first, GELU) with a key padding mask, then
# sentence-transformers mean pooling (masked sum / clamped count) and F.normalize
# ----------------------------------------------------------------------------------------------------------------

class TorchEncoder(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.3 * torch.randn(1, 16, d))
        layer = nn.TransformerEncoderLayer(d, heads, 32, dropout=0.0, activation='gelu', batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        x = self.embed(input_ids) + self.pos[:, :t]
        x = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def make_torch_encoder(out):
    torch.manual_seed(14)
    m = TorchEncoder()
    jitter_parameters(m, 14)
    # nn.TransformerEncoder deep-copies its layer, and the exporter merges initializers with equal values: make the
    # copies differ so every layer keeps its own (named) weights.
    with torch.no_grad():
        for p in m.encoder.layers[1].parameters():
            p.add_(0.05 * torch.randn(p.shape))
    ids = torch.randint(0, 64, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.int64)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    export_fixture(
        out, 'torch_encoder', m, {'input_ids': ids, 'attention_mask': mask}, ['sentence_embedding'], 14,
        'nn.TransformerEncoder (norm_first, GELU, key padding mask) + masked mean pooling + F.normalize',
        seed=14,
    )


# ----------------------------------------------------------------------------------------------------------------
# Swin block: shifted windows (torch.roll), window partition/reverse, relative position bias table indexed by a
# buffer, shifted-window attention mask
# ----------------------------------------------------------------------------------------------------------------

class SwinBlock(nn.Module):
    def __init__(self, d=16, heads=2, res=8, window=4, shift=2):
        super().__init__()
        self.d, self.heads, self.res, self.window, self.shift = d, heads, res, window, shift
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.relative_position_bias_table = nn.Parameter(0.2 * torch.randn((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer('relative_position_index', rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1])
        img = torch.zeros(1, res, res, 1)
        cnt = 0
        for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        win = self.partition(img).view(-1, window * window)
        mask = win[:, None, :] - win[:, :, None]
        self.register_buffer('attn_mask', mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0))
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)

    def partition(self, x):
        b, h, w, c = x.shape
        s = self.window
        return x.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s, s, c)

    def reverse(self, windows, b):
        s, r = self.window, self.res
        return windows.view(b, r // s, r // s, s, s, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, r, r, -1)

    def forward(self, hidden_states):
        b, n, c = hidden_states.shape
        x = self.norm1(hidden_states).view(b, self.res, self.res, c)
        x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        w = self.partition(x).view(-1, self.window * self.window, c)
        nw, t, _ = w.shape
        qkv = self.qkv(w).reshape(nw, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(t, t, -1).permute(2, 0, 1)
        scores = scores + bias.unsqueeze(0)
        windows_per_image = self.attn_mask.shape[0]
        scores = scores.view(nw // windows_per_image, windows_per_image, self.heads, t, t) + self.attn_mask[None, :, None]
        probs = scores.view(-1, self.heads, t, t).softmax(-1)
        o = self.proj((probs @ v).transpose(1, 2).reshape(nw, t, c))
        x = self.reverse(o.view(-1, self.window, self.window, c), b)
        x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2)).reshape(b, n, c)
        x = hidden_states + x
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


def make_swin(out):
    torch.manual_seed(15)
    m = SwinBlock()
    jitter_parameters(m, 15)
    export_fixture(
        out, 'swin_block', m, {'hidden_states': torch.randn(2, 64, 16)}, ['output'], 17,
        'Swin block: torch.roll shifts, window partition/reverse, relative position bias table gathered by a buffer '
        'index, shifted-window mask',
        seed=15,
    )


# ----------------------------------------------------------------------------------------------------------------
# SigLIP loss (scalar output): projections, F.normalize, learned scale and bias, -logsigmoid over all pairs
# ----------------------------------------------------------------------------------------------------------------

class SigLipLoss(nn.Module):
    def __init__(self, d_image=20, d_text=12, d=16):
        super().__init__()
        self.image_proj = nn.Linear(d_image, d)
        self.text_proj = nn.Linear(d_text, d)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-2.0))

    def forward(self, image_embeds, text_embeds):
        i = F.normalize(self.image_proj(image_embeds), dim=-1)
        t = F.normalize(self.text_proj(text_embeds), dim=-1)
        logits = t @ i.t() * self.logit_scale.exp() + self.logit_bias
        n = logits.shape[0]
        labels = 2 * torch.eye(n) - 1
        return -F.logsigmoid(labels * logits).sum() / n


def make_siglip(out):
    torch.manual_seed(16)
    m = SigLipLoss()
    jitter_parameters(m, 16)
    export_fixture(
        out, 'siglip_loss', m, {'image_embeds': torch.randn(4, 20), 'text_embeds': torch.randn(4, 12)}, ['loss'], 14,
        'SigLIP sigmoid loss (scalar output): Linear projections, F.normalize, exp(scale) + bias, -logsigmoid',
        seed=16,
    )


# ----------------------------------------------------------------------------------------------------------------
# Whisper encoder: Conv1d + GELU stem (stride 2), learned positions, pre-LN block, final LN
# ----------------------------------------------------------------------------------------------------------------

class WhisperEncoderTiny(nn.Module):
    def __init__(self, mels=8, d=32, heads=4, frames=16):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(frames // 2, d)
        self.layer = ClipLayer(d, heads, 64)
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_features):
        x = F.gelu(self.conv1(input_features))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.embed_positions.weight
        return self.layer_norm(self.layer(x))


def make_whisper(out):
    torch.manual_seed(17)
    m = WhisperEncoderTiny()
    jitter_parameters(m, 17)
    export_fixture(
        out, 'whisper_encoder_tiny', m, {'input_features': torch.randn(2, 8, 16)}, ['last_hidden_state'], 17,
        'Whisper encoder: Conv1d+GELU stem with stride 2, positions added from the embedding table, pre-LN block',
        seed=17,
    )


# ----------------------------------------------------------------------------------------------------------------
# BLOOM: ALiBi bias via baddbmm, embedding LayerNorm, custom tanh GELU, boolean mask with masked_fill
# ----------------------------------------------------------------------------------------------------------------

def bloom_gelu(x):
    return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


class BloomTiny(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, layers=1):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.word_embeddings = nn.Embedding(vocab, d)
        self.word_embeddings_layernorm = nn.LayerNorm(d)
        self.ln1 = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.qkv = nn.ModuleList([nn.Linear(d, 3 * d) for _ in range(layers)])
        self.dense = nn.ModuleList([nn.Linear(d, d) for _ in range(layers)])
        self.ln2 = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.h_to_4h = nn.ModuleList([nn.Linear(d, 4 * d) for _ in range(layers)])
        self.four_h_to_h = nn.ModuleList([nn.Linear(4 * d, d) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer('slopes', torch.tensor([2 ** (-8 * (i + 1) / heads) for i in range(heads)]))

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        x = self.word_embeddings_layernorm(self.word_embeddings(input_ids))
        arange = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
        alibi = (self.slopes[None, :, None] * arange).reshape(b * self.heads, 1, t)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)[None, None]
        masked = causal | (attention_mask[:, None, None, :] == 0)
        for i in range(len(self.qkv)):
            h = self.ln1[i](x)
            qkv = self.qkv[i](h).view(b, t, self.heads, 3, self.head_dim)
            q = qkv[..., 0, :].transpose(1, 2).reshape(b * self.heads, t, self.head_dim)
            k = qkv[..., 1, :].permute(0, 2, 3, 1).reshape(b * self.heads, self.head_dim, t)
            v = qkv[..., 2, :].transpose(1, 2).reshape(b * self.heads, t, self.head_dim)
            scores = alibi.baddbmm(batch1=q, batch2=k, beta=1.0, alpha=1.0 / math.sqrt(self.head_dim))
            scores = scores.view(b, self.heads, t, t).masked_fill(masked, F32_MIN)
            probs = F.softmax(scores, dim=-1).view(b * self.heads, t, t)
            ctx = torch.bmm(probs, v).view(b, self.heads, t, self.head_dim).permute(0, 2, 1, 3).reshape(b, t, -1)
            x = x + self.dense[i](ctx)
            x = x + self.four_h_to_h[i](bloom_gelu(self.h_to_4h[i](self.ln2[i](x))))
        return self.ln_f(x)


def make_bloom(out):
    torch.manual_seed(18)
    m = BloomTiny()
    jitter_parameters(m, 18)
    ids = torch.randint(0, 64, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    export_fixture(
        out, 'bloom_tiny', m, {'input_ids': ids, 'attention_mask': mask}, ['last_hidden_state'], 14,
        'BLOOM-style decoder: ALiBi via baddbmm, embedding LayerNorm, tanh GELU, boolean mask with masked_fill',
        dynamic_axes={'input_ids': {0: 'batch', 1: 'sequence'}, 'attention_mask': {0: 'batch', 1: 'sequence'},
                      'last_hidden_state': {0: 'batch', 1: 'sequence'}},
        seed=18,
    )


# ----------------------------------------------------------------------------------------------------------------
# Mixtral-style sparse MoE block: router softmax, TopK routing weights (renormalised), experts as SwiGLU MLPs
# combined densely with one-hot routing masks
# ----------------------------------------------------------------------------------------------------------------

class MoeBlock(nn.Module):
    def __init__(self, d=24, ff=32, experts=4, top_k=2):
        super().__init__()
        self.top_k = top_k
        self.norm = RMSNorm(d)
        self.gate = nn.Linear(d, experts, bias=False)
        self.w1 = nn.ModuleList([nn.Linear(d, ff, bias=False) for _ in range(experts)])
        self.w3 = nn.ModuleList([nn.Linear(d, ff, bias=False) for _ in range(experts)])
        self.w2 = nn.ModuleList([nn.Linear(ff, d, bias=False) for _ in range(experts)])

    def forward(self, hidden_states):
        x = self.norm(hidden_states)
        probs = F.softmax(self.gate(x), dim=-1)
        weights, selected = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        routing = (F.one_hot(selected, num_classes=len(self.w1)).to(x.dtype) * weights.unsqueeze(-1)).sum(dim=-2)
        out = hidden_states
        for e in range(len(self.w1)):
            expert = self.w2[e](F.silu(self.w1[e](x)) * self.w3[e](x))
            out = out + expert * routing[..., e:e + 1]
        return out


def make_moe(out):
    torch.manual_seed(19)
    m = MoeBlock()
    jitter_parameters(m, 19)
    with torch.no_grad():
        m.norm.weight.copy_(1 + 0.2 * torch.randn(24))
    export_fixture(
        out, 'moe_block', m, {'hidden_states': torch.randn(2, 6, 24)}, ['output'], 17,
        'Mixtral-style sparse MoE block: router softmax, TopK routing weights, SwiGLU experts mixed by one-hot masks',
        seed=19,
    )


# ----------------------------------------------------------------------------------------------------------------
# LLaVA-style merge: a pixel-shuffle (PixelShuffle = DepthToSpace, PixelUnshuffle = SpaceToDepth) + MLP projector,
# then image features written into the text embeddings at the image-token positions (index_put with a mask)
# ----------------------------------------------------------------------------------------------------------------

class LlavaMerge(nn.Module):
    def __init__(self, vocab=32, d=24, vision=8, image_token=31):
        super().__init__()
        self.image_token = image_token
        self.embed_tokens = nn.Embedding(vocab, d)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.shuffle = nn.PixelShuffle(2)
        self.mix = nn.Conv2d(4 * vision, 4 * vision, 1)
        self.linear_1 = nn.Linear(4 * vision, d)
        self.linear_2 = nn.Linear(d, d)

    def forward(self, input_ids, image_features):
        b, n, c = image_features.shape
        side = int(math.sqrt(n))
        grid = image_features.transpose(1, 2).reshape(b, c, side, side)
        grid = self.shuffle(self.mix(self.unshuffle(grid)))  # [B, C, side, side] again, mixed within 2x2 blocks
        grid = self.unshuffle(grid)  # [B, 4C, side/2, side/2]: 4x fewer tokens, as in InternVL/Idefics3
        tokens = grid.flatten(2).transpose(1, 2)
        feats = self.linear_2(F.gelu(self.linear_1(tokens)))
        embeds = self.embed_tokens(input_ids)
        mask = (input_ids == self.image_token).unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, feats.reshape(-1))


def make_llava(out):
    torch.manual_seed(20)
    m = LlavaMerge()
    jitter_parameters(m, 20)
    ids = torch.randint(0, 30, (2, 10))
    ids[0, 2:6] = 31
    ids[1, 5:9] = 31
    export_fixture(
        out, 'llava_merge', m, {'input_ids': ids, 'image_features': torch.randn(2, 16, 8)}, ['inputs_embeds'], 14,
        'LLaVA-style merge: PixelUnshuffle/PixelShuffle (SpaceToDepth/DepthToSpace) + MLP projector, image features '
        'scattered into the text embeddings at the image-token positions',
        seed=20,
    )


# ----------------------------------------------------------------------------------------------------------------
# Grab-bags of less common ops that real models use on the float path
# ----------------------------------------------------------------------------------------------------------------

class VisionOps(nn.Module):
    """ViT position-embedding interpolation (bicubic/bilinear), reflect padding, ConvTranspose, ceil-mode pools,
    GroupNorm(1), PReLU/ELU/LeakyReLU."""

    def __init__(self, c=6):
        super().__init__()
        self.pos_embed = nn.Parameter(0.5 * torch.randn(1, c, 3, 3))
        self.conv = nn.Conv2d(3, c, 3)
        self.up = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)
        self.norm = nn.GroupNorm(1, c)
        self.prelu = nn.PReLU(c)
        self.head = nn.Linear(c, 4)

    def forward(self, pixel_values):
        x = self.conv(F.pad(pixel_values, (1, 1, 1, 1), mode='reflect'))  # [B, c, 8, 8]
        x = x + F.interpolate(self.pos_embed, size=(8, 8), mode='bicubic', align_corners=False)
        x = x + F.interpolate(self.pos_embed, scale_factor=8 / 3, mode='bilinear', align_corners=True)
        x = self.prelu(self.norm(x))
        x = F.elu(self.up(F.max_pool2d(x, 3, stride=2, ceil_mode=True)))  # [B, c, 8, 8]
        x = F.leaky_relu(F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True), 0.1)
        return self.head(x.mean(dim=(2, 3)))


def make_vision_ops(out):
    torch.manual_seed(21)
    m = VisionOps()
    jitter_parameters(m, 21)
    export_fixture(
        out, 'vision_ops', m, {'pixel_values': torch.randn(2, 3, 8, 8)}, ['logits'], 14,
        'Vision op mix: bicubic/bilinear interpolation of a learned position grid, reflect Pad, ConvTranspose, '
        'ceil-mode MaxPool/AveragePool, GroupNorm(1), PReLU, ELU, LeakyReLU',
        seed=21,
    )


class TensorOps(nn.Module):
    """LayerNorm without affine over two axes, var/std, logsumexp, cumsum, flip, gather/index_select/scatter_add,
    GLU, chunk into 3, max values, F.normalize, -inf masked softmax."""

    def __init__(self, d=12):
        super().__init__()
        self.proj = nn.Linear(d, 2 * d)
        self.mix = nn.Linear(d, d)
        self.scale = nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x, index):
        b, t, d = x.shape
        h = F.glu(self.proj(x), dim=-1)  # Split + Sigmoid + Mul
        h = F.layer_norm(h, (t, d)) * self.scale
        a, c, e = h.chunk(3, dim=-1)
        stats = torch.cat([a.var(dim=1, keepdim=True).expand(-1, t, -1), c.std(dim=-1, keepdim=True).expand_as(c),
                           torch.logsumexp(e, dim=1, keepdim=True).expand_as(e)], dim=-1)
        h = h + stats + torch.cumsum(h, dim=1) * 0.1 + h.flip(1)
        picked = torch.gather(h, 1, index.unsqueeze(-1).expand(-1, -1, d))
        selected = h.index_select(1, torch.tensor([0, t - 1]))
        h = h.scatter_add(1, index.unsqueeze(-1).expand(-1, -1, d), picked) + selected.mean(1, keepdim=True)
        scores = torch.matmul(h, h.transpose(1, 2)) / d
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        probs = scores.masked_fill(causal, float('-inf')).softmax(-1)
        h = self.mix(torch.matmul(probs, h))
        return F.normalize(h, dim=-1) + h.max(dim=1, keepdim=True).values


def make_tensor_ops(out):
    torch.manual_seed(22)
    m = TensorOps()
    jitter_parameters(m, 22)
    x = torch.randn(2, 5, 12)
    # Distinct indices per row: at opset < 16 the exporter writes scatter_add as a ScatterElements without
    # reduction, which overwrites repeated indices instead of adding (the ONNX forward would differ from PyTorch).
    index = torch.tensor([[4, 0, 2], [1, 0, 3]])
    export_fixture(
        # Opset 14: PyTorch 1.13 cannot export an affine-free LayerNorm as the opset-17 op (empty scale input).
        out, 'tensor_ops', m, {'x': x, 'index': index}, ['y'], 14,
        'Tensor op mix: GLU, LayerNorm without affine over 2 axes, var/std/logsumexp, cumsum, flip, gather, '
        'index_select, scatter_add, chunk(3), -inf masked softmax, F.normalize, max values',
        seed=22,
    )


# ----------------------------------------------------------------------------------------------------------------
# Wav2Vec2 front end: strided Conv1d feature encoder with per-channel GroupNorm, feature projection, positional
# convolution with weight normalisation (weight_g / weight_v parameters) and groups, trailing-pad removal
# ----------------------------------------------------------------------------------------------------------------

class Wav2Vec2FrontEnd(nn.Module):
    def __init__(self, c=16, d=24, pos_kernel=4, pos_groups=4):
        super().__init__()
        self.conv0 = nn.Conv1d(1, c, 10, stride=5, bias=False)
        self.norm0 = nn.GroupNorm(c, c)
        self.conv1 = nn.Conv1d(c, c, 3, stride=2, bias=False)
        self.feature_norm = nn.LayerNorm(c)
        self.feature_projection = nn.Linear(c, d)
        self.pos_conv = nn.utils.weight_norm(nn.Conv1d(d, d, pos_kernel, padding=pos_kernel // 2, groups=pos_groups),
                                             name='weight', dim=2)
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_values):
        x = F.gelu(self.norm0(self.conv0(input_values[:, None, :])))
        x = F.gelu(self.conv1(x)).transpose(1, 2)
        x = self.feature_projection(self.feature_norm(x))
        p = self.pos_conv(x.transpose(1, 2))[:, :, :-1]  # even kernel: drop the extra frame
        return self.layer_norm(x + F.gelu(p).transpose(1, 2))


def make_wav2vec2(out):
    torch.manual_seed(23)
    m = Wav2Vec2FrontEnd()
    jitter_parameters(m, 23)
    with torch.no_grad():
        m.pos_conv.weight_g.mul_(1 + 0.3 * torch.rand(m.pos_conv.weight_g.shape))
    export_fixture(
        out, 'wav2vec2_frontend', m, {'input_values': torch.randn(2, 160)}, ['last_hidden_state'], 14,
        'Wav2Vec2 front end: strided Conv1d + per-channel GroupNorm + GELU, feature projection, weight-normalised '
        'grouped positional Conv1d (weight_g/weight_v), trailing-pad Slice',
        seed=23,
    )


MAKERS = {
    'bert_tiny': make_bert,
    'opt_tiny': make_opt,
    'llama_tiny': make_llama,
    'clip_text_tiny': make_clip_text,
    'clip_contrastive': make_clip_contrastive,
    'opt_lm_loss': make_opt_lm_loss,
    'qformer_layer': make_qformer,
    'unet_block': make_unet,
    'perceiver_resampler': make_perceiver,
    'neox_tiny': make_neox,
    't5_encoder_tiny': make_t5,
    'resnet_tiny': make_resnet,
    'convnet_mix': make_convnet,
    'torch_encoder': make_torch_encoder,
    'swin_block': make_swin,
    'siglip_loss': make_siglip,
    'whisper_encoder_tiny': make_whisper,
    'bloom_tiny': make_bloom,
    'moe_block': make_moe,
    'llava_merge': make_llava,
    'vision_ops': make_vision_ops,
    'tensor_ops': make_tensor_ops,
    'wav2vec2_frontend': make_wav2vec2,
}


def main(argv):
    out = DEFAULT_OUT
    only = None
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == '--only':
            only = rest.pop(0).split(',')
        else:
            out = a
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for name, make in MAKERS.items():
        if only and name not in only:
            continue
        make(out)


if __name__ == '__main__':
    main(sys.argv[1:])
