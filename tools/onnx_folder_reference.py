#!/usr/bin/python3
"""Transformers.js / Optimum ONNX model folders for the tests of electron/formats/onnx-folder/.

Run with Debian's PyTorch (`/usr/bin/python3 tools/onnx_folder_reference.py`; python3-onnx for the merged and the
quantised graphs). It builds small random-weight decoders with transformers' real config keys and state-dict names
(the modules of tools/hf_reference/, the transformers forward written in torch), exports them with torch.onnx in
the layout Transformers.js loads, and writes what the transformers forward generates, so CI needs no PyTorch:

  gpt2/     GPT2LMHeadModel: onnx/model.onnx (input_ids, attention_mask, position_ids, past_key_values.{i}.key|value
            -> logits, present.{i}.key|value) and onnx/model_quantized.onnx (int8 weights, DequantizeLinear)
  llama/    LlamaForCausalLM (GQA): onnx/model.onnx, same ports, and onnx/model_q4.onnx (com.microsoft::MatMulNBits,
            4-bit blocks of 16, the layout of Transformers.js' q4 files)
  llama_merged/  the same LLaMA as onnx/decoder_model_merged.onnx: one If on use_cache_branch whose then-branch is
            the decoder with past and else-branch the decoder without (as Optimum merges them)
  vlm/      LlavaForConditionalGeneration split as Transformers.js ships it: onnx/vision_encoder.onnx (pixel_values ->
            image_features, projector inside), onnx/embed_tokens.onnx (input_ids -> inputs_embeds),
            onnx/decoder_model_merged.onnx (inputs_embeds, ... , use_cache_branch)

`--bench DIR [HIDDEN] [LAYERS]` writes a larger random LLaMA folder (default 512 wide, 8 layers) for
bench/generate.ts instead.

Each folder has config.json, generation_config.json, tokenizer.json (+ tokenizer_config.json,
special_tokens_map.json) and reference.json: the prompt, its input_ids and the greedy tokens of the transformers
forward in float64 by full re-forward (no cache, no stopping), with the top-1 - top-2 margin of every step. Seeds are
searched until greedy decoding does not just repeat tokens and every margin is comfortable. The exported float32
modules are checked to give the same tokens with the KV cache before export.
"""

import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import decoders as D  # noqa: E402
from hf_reference.common import (  # noqa: E402
    TF_VERSION, Params, Tokenizer, act, apply_rope, attention, clip_image_processor, clip_preprocessor_config,
    fixture_picture, generate_position_ids, greedy, merge_heads, neg, repeat_kv, rms_norm, split_heads,
    write_json, write_tokenizer,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
OUT = os.path.join(REPO, 'electron', 'formats', 'onnx-folder', 'testdata')
OPSET = 14
STEPS = 12
PROMPT = 'the red circle is on the left of the blue square and'
VLM_PROMPT = 'the red circle is'
SPECIALS = OrderedDict(bos_token='<s>', eos_token='</s>', pad_token='<pad>', unk_token='<unk>')
EOS = 2
IMAGE_TOKEN = 4
NEED_DISTINCT = 5
NEED_MARGIN = 3e-3


# ----------------------------------------------------------------------------------------------------------------
# Parameters as an nn.Module, so torch.onnx names the initializers by their state-dict names


class Holder(nn.Module):
    def __init__(self, tensors):
        super().__init__()
        for name, t in tensors.items():
            parts = name.split('.')
            mod = self
            for p in parts[:-1]:
                child = mod._modules.get(p)
                if child is None:
                    child = nn.Module()
                    mod.add_module(p, child)
                mod = child
            mod.register_parameter(parts[-1], nn.Parameter(t.detach().to(torch.float32).clone(), requires_grad=False))

    def p(self, name, dtype=torch.float32):
        return self.get_parameter(name)

    __call__ = nn.Module.__call__


def cache_mask(attention_mask, q_len, dtype):
    """[B, S_total] -> additive [B,1,q_len,S_total]: the queries are the last q_len positions (after the past)."""
    s = attention_mask.shape[1]
    k_pos = torch.arange(s)
    q_pos = torch.arange(q_len) + (s - q_len)
    allowed = (k_pos[None, :] <= q_pos[:, None])[None, None] & attention_mask.bool()[:, None, None, :]
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, neg(dtype))


def ln(P, prefix, x, eps, width):
    """nn.LayerNorm with the width as a constant (torch.onnx cannot export a traced normalized_shape)."""
    return F.layer_norm(x, (width,), P(prefix + '.weight', None), P(prefix + '.bias', None), eps)


def rope32(position_ids, head_dim, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = position_ids.to(torch.float32)[..., None] * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def gpt2_step(P, cfg, input_ids, attention_mask, position_ids, past):
    d, nh = cfg['n_embd'], cfg['n_head']
    eps = cfg['layer_norm_epsilon']
    dt = torch.float32
    h = P('transformer.wte.weight', dt)[input_ids] + P('transformer.wpe.weight', dt)[position_ids]
    mask = cache_mask(attention_mask, input_ids.shape[1], dt)
    presents = []
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}.'
        x = ln(P, p + 'ln_1', h, eps, d)
        qkv = x @ P(p + 'attn.c_attn.weight', dt) + P(p + 'attn.c_attn.bias', dt)
        q, k, v = (split_heads(t, nh) for t in qkv.split(d, dim=2))
        if past is not None:
            k = torch.cat([past[2 * i], k], dim=2)
            v = torch.cat([past[2 * i + 1], v], dim=2)
        presents += [k, v]
        a = merge_heads(attention(q, k, v, (d // nh) ** -0.5, mask))
        h = h + a @ P(p + 'attn.c_proj.weight', dt) + P(p + 'attn.c_proj.bias', dt)
        x = ln(P, p + 'ln_2', h, eps, d)
        x = act(cfg['activation_function'], x @ P(p + 'mlp.c_fc.weight', dt) + P(p + 'mlp.c_fc.bias', dt))
        h = h + x @ P(p + 'mlp.c_proj.weight', dt) + P(p + 'mlp.c_proj.bias', dt)
    h = ln(P, 'transformer.ln_f', h, eps, d)
    return h @ P('transformer.wte.weight', dt).T, presents


def llama_step(P, cfg, inputs_embeds, attention_mask, position_ids, past, prefix='model.', head='lm_head.weight'):
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = D.rope_head_dim(cfg)
    eps = cfg['rms_norm_eps']
    dt = torch.float32
    h = inputs_embeds
    mask = cache_mask(attention_mask, inputs_embeds.shape[1], dt)
    cos, sin = rope32(position_ids, hd, cfg['rope_theta'])
    presents = []
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layers.{i}.'
        x = rms_norm(P, p + 'input_layernorm.weight', h, eps, dt)
        q = split_heads(F.linear(x, P(p + 'self_attn.q_proj.weight', dt)), nh)
        k = split_heads(F.linear(x, P(p + 'self_attn.k_proj.weight', dt)), nkv)
        v = split_heads(F.linear(x, P(p + 'self_attn.v_proj.weight', dt)), nkv)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k = torch.cat([past[2 * i], k], dim=2)
            v = torch.cat([past[2 * i + 1], v], dim=2)
        presents += [k, v]
        a = merge_heads(attention(q, repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv), hd ** -0.5, mask))
        h = h + F.linear(a, P(p + 'self_attn.o_proj.weight', dt))
        x = rms_norm(P, p + 'post_attention_layernorm.weight', h, eps, dt)
        g = act(cfg['hidden_act'], F.linear(x, P(p + 'mlp.gate_proj.weight', dt)))
        h = h + F.linear(g * F.linear(x, P(p + 'mlp.up_proj.weight', dt)), P(p + 'mlp.down_proj.weight', dt))
    h = rms_norm(P, prefix + 'norm.weight', h, eps, dt)
    return F.linear(h, P(head, dt)), presents


class Exported(Holder):
    """forward(ids_or_embeds, attention_mask, position_ids, *past) -> (logits, *presents)."""

    def __init__(self, tensors, step, with_past, embed=None):
        super().__init__(tensors)
        self.step, self.with_past, self.embed = step, with_past, embed

    def forward(self, x, attention_mask, position_ids, *past):
        P = lambda name, dt: self.get_parameter(name)  # noqa: E731
        if self.embed is not None:
            x = P(self.embed, None)[x]
        logits, presents = self.step(P, x, attention_mask, position_ids, list(past) if self.with_past else None)
        return (logits, *presents)


def past_names(layers):
    return [f'past_key_values.{i}.{kv}' for i in range(layers) for kv in ('key', 'value')]


def present_names(layers):
    return [f'present.{i}.{kv}' for i in range(layers) for kv in ('key', 'value')]


def export_decoder(module, path, first_input, layers, kv_heads, head_dim, with_past, width=None):
    """torch.onnx.export in the Transformers.js layout (dynamic batch, sequence and past lengths)."""
    b, t, past_len = 1, 3, 2
    if first_input == 'input_ids':
        x = torch.tensor([[5, 9, 11]], dtype=torch.int64)
    else:
        x = torch.randn(b, t, width)
    total = t + (past_len if with_past else 0)
    mask = torch.ones(b, total, dtype=torch.int64)
    pos = torch.arange(total - t, total, dtype=torch.int64)[None]
    past = [torch.randn(b, kv_heads, past_len, head_dim) for _ in range(2 * layers)] if with_past else []
    inputs = [first_input, 'attention_mask', 'position_ids'] + (past_names(layers) if with_past else [])
    outputs = ['logits'] + present_names(layers)
    axes = {first_input: {0: 'batch_size', 1: 'sequence_length'}, 'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
            'position_ids': {0: 'batch_size', 1: 'sequence_length'}, 'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for n in (past_names(layers) if with_past else []):
        axes[n] = {0: 'batch_size', 2: 'past_sequence_length'}
    for n in present_names(layers):
        axes[n] = {0: 'batch_size', 2: 'total_sequence_length'}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(module, (x, mask, pos, *past), path, input_names=inputs, output_names=outputs,
                      dynamic_axes=axes, opset_version=OPSET, do_constant_folding=False)


# ----------------------------------------------------------------------------------------------------------------
# Merging (Optimum's decoder_model_merged) and quantising (Optimum's model_quantized) with the onnx package


def merge_decoders(with_past_path, no_past_path, out_path):
    import onnx
    from onnx import helper, numpy_helper
    wp, npst = onnx.load(with_past_path), onnx.load(no_past_path)
    outer = {i.name: i for i in wp.graph.initializer}
    outer_inputs = {i.name for i in wp.graph.input}

    def branch(model, prefix):
        g = model.graph
        private = []
        rename = {}
        for init in g.initializer:
            if init.name in outer and np.array_equal(numpy_helper.to_array(outer[init.name]), numpy_helper.to_array(init)):
                continue
            rename[init.name] = prefix + init.name
            t = onnx.TensorProto()
            t.CopyFrom(init)
            t.name = prefix + init.name
            private.append(t)
        for node in g.node:
            for o in node.output:
                rename[o] = prefix + o
        nodes = []
        for node in g.node:
            n = onnx.NodeProto()
            n.CopyFrom(node)
            n.name = prefix + node.name
            del n.input[:]
            n.input.extend([rename.get(i, i) if i else i for i in node.input])
            del n.output[:]
            n.output.extend([rename[o] for o in node.output])
            nodes.append(n)
        for i in g.input:
            assert i.name in outer_inputs, f'{i.name} is not an input of the merged decoder'
        outputs = [helper.make_tensor_value_info(rename[o.name], o.type.tensor_type.elem_type, None) for o in g.output]
        return helper.make_graph(nodes, prefix.strip('/'), [], outputs, initializer=private)

    then_g = branch(wp, '/with_past/')
    else_g = branch(npst, '/no_past/')
    cond = helper.make_tensor_value_info('use_cache_branch', onnx.TensorProto.BOOL, [1])
    if_node = helper.make_node('If', ['use_cache_branch'], [o.name for o in wp.graph.output], name='optimum::if',
                               then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([if_node], 'decoder_model_merged', list(wp.graph.input) + [cond], list(wp.graph.output),
                              initializer=list(wp.graph.initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='onnx_folder_reference')
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out_path)


def quantize_int8(src, out_path):
    """Every MatMul whose weight is a 2-D float initializer reads DequantizeLinear(int8 W, per-tensor scale, 0)."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    new_nodes, count = [], 0
    for node in g.node:
        if node.op_type == 'MatMul' and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            scale = np.float32(np.abs(w).max() / 127.0)
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            base = node.input[1]
            g.initializer.append(numpy_helper.from_array(q, base + '_quantized'))
            g.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), base + '_scale'))
            g.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int8), base + '_zero_point'))
            deq = base + '_dequantized'
            new_nodes.append(helper.make_node('DequantizeLinear', [base + '_quantized', base + '_scale', base + '_zero_point'],
                                              [deq], name=base + '_DequantizeLinear'))
            node.input[1] = deq
            count += 1
        new_nodes.append(node)
    used = {i for n in new_nodes for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.node[:]
    g.node.extend(new_nodes)
    onnx.checker.check_model(m)
    onnx.save(m, out_path)
    return count


def quantize_q4(src, out_path, block=16):
    """Transformers.js' q4 layout: every MatMul(x, Transpose(W)) (nn.Linear, W [out, in]) becomes
    com.microsoft::MatMulNBits(x, packed 4-bit W, per-block scales) with the default zero point 8."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    drop, new_nodes, count = set(), [], 0
    for node in g.node:
        tr = producer.get(node.input[1]) if node.op_type == 'MatMul' else None
        if tr is not None and tr.op_type == 'Transpose' and tr.input[0] in inits:
            w = numpy_helper.to_array(inits[tr.input[0]]).astype(np.float32)  # [N, K]
            n_out, k = w.shape
            assert k % block == 0, (tr.input[0], k)
            blocks = w.reshape(n_out, k // block, block)
            scale = np.abs(blocks).max(axis=2) / 7.0
            scale[scale == 0] = 1.0
            q = np.clip(np.round(blocks / scale[..., None]) + 8, 0, 15).astype(np.uint8)
            packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # low nibble first
            base = tr.input[0]
            g.initializer.append(numpy_helper.from_array(packed, base + '_Q4'))
            g.initializer.append(numpy_helper.from_array(scale.astype(np.float32).reshape(-1), base + '_scales'))
            new_nodes.append(helper.make_node('MatMulNBits', [node.input[0], base + '_Q4', base + '_scales'], list(node.output),
                                              name=node.name + '_Q4', domain='com.microsoft', K=k, N=n_out, bits=4,
                                              block_size=block))
            drop.add(id(tr))
            count += 1
            continue
        new_nodes.append(node)
    new_nodes = [n for n in new_nodes if id(n) not in drop]
    used = {i for n in new_nodes for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.node[:]
    g.node.extend(new_nodes)
    m.opset_import.append(helper.make_opsetid('com.microsoft', 1))
    onnx.save(m, out_path)
    return count


# ----------------------------------------------------------------------------------------------------------------
# Folders


def gpt2_cfg():
    return D.gpt2_config(n_embd=32, n_head=4, n_layer=2, n_positions=128, n_ctx=128, vocab_size=316,
                         bos_token_id=1, eos_token_id=EOS, transformers_version=TF_VERSION)


def llama_cfg():
    return D.llama_config(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=8, max_position_embeddings=128, torch_dtype='float32', vocab_size=316,
                          transformers_version=TF_VERSION)


def cached_greedy(step_fn, ids, steps):
    """Greedy with the KV cache through the float32 export module: the tokens the ONNX file must give."""
    b, t = ids.shape
    mask = torch.ones(b, t, dtype=torch.int64)
    logits, past = step_fn(ids, mask, generate_position_ids(mask), None)
    out = []
    for _ in range(steps):
        nxt = logits[:, -1].argmax(-1)
        out.append(int(nxt[0]))
        mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.int64)], 1)
        pos = generate_position_ids(mask)[:, -1:]
        logits, past = step_fn(nxt[:, None], mask, pos, past)
    return out


def search(build, reference, cached, base_seed, what):
    for seed in range(base_seed, base_seed + 200):
        P = Params(seed, 'float32')
        build(P)
        toks, margin = reference(P)
        row = toks[0].tolist()
        if len(set(row)) >= NEED_DISTINCT and float(margin.min()) >= NEED_MARGIN and EOS not in row:
            mine = cached(P)
            if mine != row:
                raise AssertionError(f'{what}: the exported module with the KV cache gives {mine}, the reference {row}')
            print(f'{what}: seed {seed}, tokens {row}, {len(set(row))} distinct, top-2 margins min {float(margin.min()):.4f} '
                  f'mean {float(margin.mean()):.4f}')
            return P, row, margin[0].tolist(), seed
    raise RuntimeError(f'{what}: no seed gives varied greedy tokens')


def write_common(folder, config, tok, gen_extra=None):
    os.makedirs(os.path.join(folder, 'onnx'), exist_ok=True)
    write_json(os.path.join(folder, 'config.json'), config)
    write_tokenizer(folder, tok, SPECIALS, OrderedDict(add_bos_token=True, add_eos_token=False, model_max_length=128,
                                                      padding_side='left', extra_special_tokens={}))
    gen = OrderedDict(bos_token_id=1, do_sample=False, eos_token_id=EOS, max_new_tokens=STEPS, pad_token_id=0,
                      transformers_version=TF_VERSION)
    gen.update(gen_extra or {})
    write_json(os.path.join(folder, 'generation_config.json'), gen)


def write_reference(folder, prompt, ids, tokens, margins, seed, notes):
    write_json(os.path.join(folder, 'reference.json'), OrderedDict(
        prompt=prompt, input_ids=ids, greedy_tokens=tokens, top2_margins=[round(m, 6) for m in margins], seed=seed,
        notes=notes))


def make_gpt2():
    cfg = gpt2_cfg()
    tok = Tokenizer()
    ids = torch.tensor([tok.encode(PROMPT)], dtype=torch.int64)
    build = lambda P: D.build_gpt2(P, cfg, legacy_buffers=False, emb_std=0.1)  # noqa: E731
    ref = lambda P: greedy(lambda i, m: D.gpt2_forward(P, cfg, torch.float64, i, m, generate_position_ids(m))[0], ids,  # noqa: E731
                           torch.ones_like(ids), STEPS)

    def cached(P):
        H = Holder(P.tensors)
        return cached_greedy(lambda i, m, pos, past: gpt2_step(lambda n, dt: H.p(n), cfg, i, m, pos, past), ids, STEPS)

    P, toks, margins, seed = search(build, ref, cached, 1100, 'gpt2')
    folder = os.path.join(OUT, 'gpt2')
    write_common(folder, cfg, tok)
    step = lambda P_, x, m, pos, past: gpt2_step(P_, cfg, x, m, pos, past)  # noqa: E731
    mod = Exported(P.tensors, step, True)
    export_decoder(mod, os.path.join(folder, 'onnx', 'model.onnx'), 'input_ids', cfg['n_layer'], cfg['n_head'],
                   cfg['n_embd'] // cfg['n_head'], True)
    n = quantize_int8(os.path.join(folder, 'onnx', 'model.onnx'), os.path.join(folder, 'onnx', 'model_quantized.onnx'))
    print(f'gpt2: model_quantized.onnx dequantises {n} weight matrices')
    write_reference(folder, PROMPT, ids[0].tolist(), toks, margins, seed,
                    'GPT2LMHeadModel (Conv1D weights, tied head, gelu_new); greedy of the transformers forward in '
                    'float64 by full re-forward with generation position ids; the tokenizer prepends <s>.')


def llama_parts(cfg):
    tok = Tokenizer()
    ids = torch.tensor([tok.encode(PROMPT)], dtype=torch.int64)
    build = lambda P: D.build_llama(P, cfg)  # noqa: E731

    def ref(P):
        def logits(i, m):
            return D.llama_forward(P, cfg, torch.float64, D.llama_embed(P, cfg, torch.float64, i), m,
                                   generate_position_ids(m))[0]
        return greedy(logits, ids, torch.ones_like(ids), STEPS)

    def cached(P):
        H = Holder(P.tensors)
        Pf = lambda n, dt: H.p(n)  # noqa: E731
        return cached_greedy(lambda i, m, pos, past: llama_step(Pf, cfg, Pf('model.embed_tokens.weight', None)[i], m, pos, past),
                             ids, STEPS)

    return tok, ids, build, ref, cached


def make_llama():
    cfg = llama_cfg()
    tok, ids, build, ref, cached = llama_parts(cfg)
    P, toks, margins, seed = search(build, ref, cached, 2100, 'llama')
    hd = D.rope_head_dim(cfg)
    step = lambda P_, x, m, pos, past: llama_step(P_, cfg, x, m, pos, past)  # noqa: E731
    note = ('LlamaForCausalLM (GQA 4 query / 2 kv heads, head_dim 8, untied head, rope_theta 10000); greedy of the '
            'transformers forward in float64 by full re-forward; the tokenizer prepends <s>.')
    folder = os.path.join(OUT, 'llama')
    write_common(folder, cfg, tok)
    export_decoder(Exported(P.tensors, step, True, embed='model.embed_tokens.weight'), os.path.join(folder, 'onnx', 'model.onnx'),
                   'input_ids', cfg['num_hidden_layers'], cfg['num_key_value_heads'], hd, True)
    n = quantize_q4(os.path.join(folder, 'onnx', 'model.onnx'), os.path.join(folder, 'onnx', 'model_q4.onnx'))
    print(f'llama: model_q4.onnx packs {n} weight matrices in 4 bits (MatMulNBits)')
    write_reference(folder, PROMPT, ids[0].tolist(), toks, margins, seed, note)

    folder = os.path.join(OUT, 'llama_merged')
    write_common(folder, cfg, tok)
    tmp_wp, tmp_np = os.path.join(folder, 'with_past.tmp.onnx'), os.path.join(folder, 'no_past.tmp.onnx')
    export_decoder(Exported(P.tensors, step, True, embed='model.embed_tokens.weight'), tmp_wp, 'input_ids',
                   cfg['num_hidden_layers'], cfg['num_key_value_heads'], hd, True)
    export_decoder(Exported(P.tensors, step, False, embed='model.embed_tokens.weight'), tmp_np, 'input_ids',
                   cfg['num_hidden_layers'], cfg['num_key_value_heads'], hd, False)
    merge_decoders(tmp_wp, tmp_np, os.path.join(folder, 'onnx', 'decoder_model_merged.onnx'))
    os.remove(tmp_wp)
    os.remove(tmp_np)
    write_reference(folder, PROMPT, ids[0].tolist(), toks, margins, seed, note + ' Merged decoder: If on use_cache_branch.')


# --- the split VLM ----------------------------------------------------------------------------------------------

VIS = dict(hidden=16, patch=8, image=16)


def build_vision(P, d_text):
    v = VIS
    n = (v['image'] // v['patch']) ** 2
    pre = 'vision_tower.vision_model.'
    P.param(pre + 'embeddings.patch_embedding.weight', (v['hidden'], 3, v['patch'], v['patch']), 0.2)
    P.param(pre + 'embeddings.position_embedding.weight', (n, v['hidden']), 0.3)
    P.layer_norm(pre + 'post_layernorm', v['hidden'])
    P.linear('multi_modal_projector.linear_1', v['hidden'], d_text)
    P.linear('multi_modal_projector.linear_2', d_text, d_text)


def vision_forward(P, pixel_values, dtype):
    pre = 'vision_tower.vision_model.'
    x = F.conv2d(pixel_values.to(dtype), P(pre + 'embeddings.patch_embedding.weight', dtype), stride=VIS['patch'])
    x = x.flatten(2).transpose(1, 2) + P(pre + 'embeddings.position_embedding.weight', dtype)
    x = F.layer_norm(x, (VIS['hidden'],), P(pre + 'post_layernorm.weight', dtype), P(pre + 'post_layernorm.bias', dtype), 1e-5)
    x = F.linear(x, P('multi_modal_projector.linear_1.weight', dtype), P('multi_modal_projector.linear_1.bias', dtype))
    x = F.gelu(x)
    return F.linear(x, P('multi_modal_projector.linear_2.weight', dtype), P('multi_modal_projector.linear_2.bias', dtype))


class VisionExport(Holder):
    def forward(self, pixel_values):
        return vision_forward(lambda n, dt: self.get_parameter(n), pixel_values, torch.float32)


class EmbedExport(Holder):
    def forward(self, input_ids):
        return self.get_parameter('language_model.model.embed_tokens.weight')[input_ids]


def make_vlm():
    text = llama_cfg()
    n_img = (VIS['image'] // VIS['patch']) ** 2
    tok = Tokenizer()
    prompt = '<image>\n' + VLM_PROMPT
    ids = torch.tensor([tok.encode('<image>' * n_img + '\n' + VLM_PROMPT)], dtype=torch.int64)
    pre_cfg = clip_preprocessor_config(VIS['image'], 'LlavaProcessor')
    pixels = torch.from_numpy(clip_image_processor(fixture_picture(), pre_cfg))[None]
    prefix, head = 'language_model.model.', 'language_model.lm_head.weight'

    def build(P):
        build_vision(P, text['hidden_size'])
        D.build_llama(P, text, model_prefix=prefix, head_name=head)

    def embeds(P, i, dtype, feats):
        e = P(prefix + 'embed_tokens.weight', dtype)[i].clone()
        m = i == IMAGE_TOKEN
        e[m] = feats.reshape(-1, feats.shape[-1])[: int(m.sum())]
        return e

    def ref(P):
        feats = vision_forward(P, pixels, torch.float64)
        return greedy(lambda i, m: D.llama_forward(P, text, torch.float64, embeds(P, i, torch.float64, feats), m,
                                                   generate_position_ids(m), model_prefix=prefix, head_name=head)[0],
                      ids, torch.ones_like(ids), STEPS)

    def cached(P):
        H = Holder(P.tensors)
        Pf = lambda n, dt: H.p(n)  # noqa: E731
        feats = vision_forward(Pf, pixels, torch.float32)

        def step(i, m, pos, past):
            e = embeds(Pf, i, torch.float32, feats) if past is None else Pf(prefix + 'embed_tokens.weight', None)[i]
            return llama_step(Pf, text, e, m, pos, past, prefix=prefix, head=head)
        return cached_greedy(step, ids, STEPS)

    P, toks, margins, seed = search(build, ref, cached, 3100, 'vlm')
    folder = os.path.join(OUT, 'vlm')
    vision_cfg = OrderedDict(model_type='clip_vision_model', hidden_size=VIS['hidden'], image_size=VIS['image'],
                             patch_size=VIS['patch'], num_channels=3)
    config = OrderedDict(architectures=['LlavaForConditionalGeneration'], model_type='llava',
                         image_token_index=IMAGE_TOKEN, projector_hidden_act='gelu', text_config=text,
                         vision_config=vision_cfg, vision_feature_layer=-1, vision_feature_select_strategy='full',
                         transformers_version=TF_VERSION)
    write_common(folder, config, tok)
    write_json(os.path.join(folder, 'preprocessor_config.json'), pre_cfg)
    fixture_picture().save(os.path.join(folder, 'image.png'))
    onnx_dir = os.path.join(folder, 'onnx')
    vis_names = {k: t for k, t in P.tensors.items() if k.startswith(('vision_tower.', 'multi_modal_projector.'))}
    torch.onnx.export(VisionExport(vis_names), (pixels.to(torch.float32),), os.path.join(onnx_dir, 'vision_encoder.onnx'),
                      input_names=['pixel_values'], output_names=['image_features'],
                      dynamic_axes={'pixel_values': {0: 'batch_size'}, 'image_features': {0: 'batch_size'}},
                      opset_version=OPSET, do_constant_folding=False)
    emb = {prefix + 'embed_tokens.weight': P.tensors[prefix + 'embed_tokens.weight']}
    torch.onnx.export(EmbedExport(emb), (ids,), os.path.join(onnx_dir, 'embed_tokens.onnx'), input_names=['input_ids'],
                      output_names=['inputs_embeds'], dynamic_axes={'input_ids': {0: 'batch_size', 1: 'sequence_length'},
                                                                    'inputs_embeds': {0: 'batch_size', 1: 'sequence_length'}},
                      opset_version=OPSET, do_constant_folding=False)
    dec = {k: t for k, t in P.tensors.items() if k.startswith('language_model.') and k != prefix + 'embed_tokens.weight'}
    step = lambda P_, x, m, pos, past: llama_step(P_, text, x, m, pos, past, prefix=prefix, head=head)  # noqa: E731
    hd = D.rope_head_dim(text)
    tmp_wp, tmp_np = os.path.join(folder, 'with_past.tmp.onnx'), os.path.join(folder, 'no_past.tmp.onnx')
    for path, wp in ((tmp_wp, True), (tmp_np, False)):
        export_decoder(Exported(dec, step, wp), path, 'inputs_embeds', text['num_hidden_layers'], text['num_key_value_heads'],
                       hd, wp, width=text['hidden_size'])
    merge_decoders(tmp_wp, tmp_np, os.path.join(onnx_dir, 'decoder_model_merged.onnx'))
    os.remove(tmp_wp)
    os.remove(tmp_np)
    write_reference(folder, prompt, ids[0].tolist(), toks, margins, seed,
                    f'LLaVA split as Transformers.js ships it; the prompt is "<image>\\n{{input}}" with <image> (id '
                    f'{IMAGE_TOKEN}) expanded to the {n_img} image features, scattered into the embedded prompt; '
                    'pixel_values from image.png through CLIPImageProcessor (shortest edge 16, centre crop 16).')


def make_bench_llama(folder, hidden, layers):
    """A larger random LLaMA folder for bench/generate.ts (not a fixture: no reference search, not committed)."""
    heads = max(1, hidden // 64)
    cfg = D.llama_config(hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_attention_heads=heads,
                         num_key_value_heads=max(1, heads // 2), head_dim=hidden // heads, num_hidden_layers=layers,
                         max_position_embeddings=2048, torch_dtype='float32', vocab_size=316,
                         transformers_version=TF_VERSION)
    P = Params(7, 'float32')
    D.build_llama(P, cfg)
    write_common(folder, cfg, Tokenizer())
    step = lambda P_, x, m, pos, past: llama_step(P_, cfg, x, m, pos, past)  # noqa: E731
    export_decoder(Exported(P.tensors, step, True, embed='model.embed_tokens.weight'), os.path.join(folder, 'onnx', 'model.onnx'),
                   'input_ids', layers, cfg['num_key_value_heads'], D.rope_head_dim(cfg), True)
    n = sum(t.numel() for t in P.tensors.values())
    print(f'bench llama: {n / 1e6:.1f}M parameters in {folder}')


def main():
    torch.manual_seed(0)
    if len(sys.argv) > 1 and sys.argv[1] == '--bench':
        # tools/onnx_folder_reference.py --bench DIR [HIDDEN] [LAYERS]
        make_bench_llama(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 512, int(sys.argv[4]) if len(sys.argv) > 4 else 8)
        return
    make_gpt2()
    make_llama()
    make_vlm()
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            if f.endswith('.onnx'):
                p = os.path.join(root, f)
                print(f'{os.path.relpath(p, OUT)}: {os.path.getsize(p) / 1024:.0f} KiB')


if __name__ == '__main__':
    main()
