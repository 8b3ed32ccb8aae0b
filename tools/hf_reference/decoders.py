"""Causal LMs: LLaMA / Mistral / Qwen2 (one RoPE decoder with per-architecture switches), OPT and GPT-2.

Read from transformers' modeling_llama.py, modeling_mistral.py, modeling_qwen2.py, modeling_opt.py,
modeling_gpt2.py and their configuration_*.py. Each builder registers the parameters in the module order of the
transformers class (so `state_dict()` order and names match); each forward reads them back by those names.
"""

from collections import OrderedDict

import torch

from .common import (
    act, apply_rope, attention, causal_mask, layer_norm, linear, merge_heads, repeat_kv, rms_norm, rope_cos_sin,
    split_heads,
)

# ----------------------------------------------------------------------------------------------------------------
# LLaMA family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)
# ----------------------------------------------------------------------------------------------------------------


def rope_head_dim(cfg):
    return cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']


def build_llama(P, cfg, model_prefix='model.', head_name='lm_head.weight', qkv_bias=False, o_bias=False,
                emb_std=1.0):
    """LlamaModel under `model_prefix` (embed_tokens, layers.N.{self_attn,mlp,input_layernorm,
    post_attention_layernorm}, norm) and, unless tied, the lm_head."""
    d, v = cfg['hidden_size'], cfg['vocab_size']
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = rope_head_dim(cfg)
    ff = cfg['intermediate_size']
    P.embedding(model_prefix + 'embed_tokens.weight', v, d, std=emb_std)
    for i in range(cfg['num_hidden_layers']):
        p = f'{model_prefix}layers.{i}.'
        P.linear(p + 'self_attn.q_proj', d, nh * hd, bias=qkv_bias)
        P.linear(p + 'self_attn.k_proj', d, nkv * hd, bias=qkv_bias)
        P.linear(p + 'self_attn.v_proj', d, nkv * hd, bias=qkv_bias)
        P.linear(p + 'self_attn.o_proj', nh * hd, d, bias=o_bias)
        P.linear(p + 'mlp.gate_proj', d, ff, bias=cfg.get('mlp_bias', False))
        P.linear(p + 'mlp.up_proj', d, ff, bias=cfg.get('mlp_bias', False))
        P.linear(p + 'mlp.down_proj', ff, d, bias=cfg.get('mlp_bias', False))
        P.layer_norm(p + 'input_layernorm', d, bias=False)
        P.layer_norm(p + 'post_attention_layernorm', d, bias=False)
    P.layer_norm(model_prefix + 'norm', d, bias=False)
    if not cfg['tie_word_embeddings']:
        P.linear(head_name[:-len('.weight')], d, v, bias=False)


def llama_forward(P, cfg, dtype, inputs_embeds, attention_mask, position_ids, model_prefix='model.',
                  head_name='lm_head.weight', qkv_bias=False, o_bias=False):
    """-> (logits [B,T,V], last_hidden_state). position_ids [B,T]; attention_mask [B,T] of 1/0."""
    nh, nkv = cfg['num_attention_heads'], cfg['num_key_value_heads']
    hd = rope_head_dim(cfg)
    eps = cfg['rms_norm_eps']
    h = inputs_embeds
    mask = causal_mask(attention_mask, dtype)
    window = cfg.get('sliding_window') if cfg.get('use_sliding_window', True) else None
    if window is not None and window < h.shape[1]:
        raise ValueError('fixture sequences must stay inside the sliding window')
    cos, sin = rope_cos_sin(position_ids, hd, cfg['rope_theta'], dtype)
    mlp_bias = cfg.get('mlp_bias', False)
    for i in range(cfg['num_hidden_layers']):
        p = f'{model_prefix}layers.{i}.'
        x = rms_norm(P, p + 'input_layernorm.weight', h, eps, dtype)
        q = split_heads(linear(P, p + 'self_attn.q_proj', x, dtype, bias=qkv_bias), nh)
        k = split_heads(linear(P, p + 'self_attn.k_proj', x, dtype, bias=qkv_bias), nkv)
        v = split_heads(linear(P, p + 'self_attn.v_proj', x, dtype, bias=qkv_bias), nkv)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)
        a = merge_heads(attention(q, k, v, hd ** -0.5, mask))
        h = h + linear(P, p + 'self_attn.o_proj', a, dtype, bias=o_bias)
        x = rms_norm(P, p + 'post_attention_layernorm.weight', h, eps, dtype)
        g = act(cfg['hidden_act'], linear(P, p + 'mlp.gate_proj', x, dtype, bias=mlp_bias))
        u = linear(P, p + 'mlp.up_proj', x, dtype, bias=mlp_bias)
        h = h + linear(P, p + 'mlp.down_proj', g * u, dtype, bias=mlp_bias)
    h = rms_norm(P, model_prefix + 'norm.weight', h, eps, dtype)
    head = P(model_prefix + 'embed_tokens.weight', dtype) if cfg['tie_word_embeddings'] else P(head_name, dtype)
    return h @ head.T, h


def llama_embed(P, cfg, dtype, input_ids, model_prefix='model.'):
    return P(model_prefix + 'embed_tokens.weight', dtype)[input_ids]


def llama_config(**kw):
    cfg = OrderedDict([
        ('architectures', ['LlamaForCausalLM']),
        ('attention_bias', False),
        ('attention_dropout', 0.0),
        ('bos_token_id', 1),
        ('eos_token_id', 2),
        ('head_dim', 16),
        ('hidden_act', 'silu'),
        ('hidden_size', 64),
        ('initializer_range', 0.02),
        ('intermediate_size', 128),
        ('max_position_embeddings', 64),
        ('mlp_bias', False),
        ('model_type', 'llama'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('num_key_value_heads', 2),
        ('pad_token_id', 0),
        ('pretraining_tp', 1),
        ('rms_norm_eps', 1e-5),
        ('rope_scaling', None),
        ('rope_theta', 10000.0),
        ('tie_word_embeddings', False),
        ('torch_dtype', 'bfloat16'),
        ('transformers_version', None),
        ('use_cache', True),
        ('vocab_size', 316),
    ])
    cfg.update(kw)
    return cfg


def mistral_config(**kw):
    cfg = OrderedDict([
        ('architectures', ['MistralForCausalLM']),
        ('attention_dropout', 0.0),
        ('bos_token_id', 1),
        ('eos_token_id', 2),
        ('head_dim', 16),
        ('hidden_act', 'silu'),
        ('hidden_size', 64),
        ('initializer_range', 0.02),
        ('intermediate_size', 112),
        ('max_position_embeddings', 64),
        ('model_type', 'mistral'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('num_key_value_heads', 1),
        ('pad_token_id', 0),
        ('rms_norm_eps', 1e-5),
        ('rope_theta', 10000.0),
        ('sliding_window', None),
        ('tie_word_embeddings', False),
        ('torch_dtype', 'float32'),
        ('transformers_version', None),
        ('use_cache', True),
        ('vocab_size', 316),
    ])
    cfg.update(kw)
    return cfg


def qwen2_config(**kw):
    cfg = OrderedDict([
        ('architectures', ['Qwen2ForCausalLM']),
        ('attention_dropout', 0.0),
        ('bos_token_id', 1),
        ('eos_token_id', 2),
        ('hidden_act', 'silu'),
        ('hidden_size', 64),
        ('initializer_range', 0.02),
        ('intermediate_size', 160),
        ('layer_types', ['full_attention', 'full_attention']),
        ('max_position_embeddings', 64),
        ('max_window_layers', 2),
        ('model_type', 'qwen2'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('num_key_value_heads', 2),
        ('pad_token_id', 0),
        ('rms_norm_eps', 1e-6),
        ('rope_scaling', None),
        ('rope_theta', 1000000.0),
        ('sliding_window', None),
        ('tie_word_embeddings', True),
        ('torch_dtype', 'float32'),
        ('transformers_version', None),
        ('use_cache', True),
        ('use_sliding_window', False),
        ('vocab_size', 320),
    ])
    cfg.update(kw)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# OPT (OPTForCausalLM): model.decoder.*, learned positions with offset 2, pre-LN, tied lm_head
# ----------------------------------------------------------------------------------------------------------------

OPT_POSITION_OFFSET = 2


def build_opt(P, cfg, prefix='model.decoder.', emb_std=1.0):
    d, v = cfg['hidden_size'], cfg['vocab_size']
    assert cfg['word_embed_proj_dim'] == d, 'project_in/project_out are not built'
    P.embedding(prefix + 'embed_tokens.weight', v, d, std=emb_std)
    P.embedding(prefix + 'embed_positions.weight', cfg['max_position_embeddings'] + OPT_POSITION_OFFSET, d, std=0.3)
    if cfg['do_layer_norm_before'] and not cfg['_remove_final_layer_norm']:
        P.layer_norm(prefix + 'final_layer_norm', d)
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layers.{i}.'
        for name in ('k_proj', 'v_proj', 'q_proj', 'out_proj'):
            P.linear(p + 'self_attn.' + name, d, d, bias=cfg['enable_bias'])
        P.layer_norm(p + 'self_attn_layer_norm', d)
        P.linear(p + 'fc1', d, cfg['ffn_dim'], bias=cfg['enable_bias'])
        P.linear(p + 'fc2', cfg['ffn_dim'], d, bias=cfg['enable_bias'])
        P.layer_norm(p + 'final_layer_norm', d)


def opt_position_ids(attention_mask):
    """OPTDecoder without position_ids: cumsum(mask) * mask - 1 (padded places -1), before the +2 offset."""
    return (attention_mask.long().cumsum(1) * attention_mask.long()) - 1


def opt_forward(P, cfg, dtype, inputs_embeds, attention_mask, position_ids=None, prefix='model.decoder.'):
    d, nh = cfg['hidden_size'], cfg['num_attention_heads']
    hd = d // nh
    if position_ids is None:
        position_ids = opt_position_ids(attention_mask)
    pos = P(prefix + 'embed_positions.weight', dtype)[position_ids + OPT_POSITION_OFFSET]
    h = inputs_embeds + pos
    mask = causal_mask(attention_mask, dtype)
    pre = cfg['do_layer_norm_before']
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layers.{i}.'
        r = h
        x = layer_norm(P, p + 'self_attn_layer_norm', h, 1e-5, dtype) if pre else h
        q = split_heads(linear(P, p + 'self_attn.q_proj', x, dtype) * hd ** -0.5, nh)
        k = split_heads(linear(P, p + 'self_attn.k_proj', x, dtype), nh)
        v = split_heads(linear(P, p + 'self_attn.v_proj', x, dtype), nh)
        a = merge_heads(attention(q, k, v, 1.0, mask))
        h = r + linear(P, p + 'self_attn.out_proj', a, dtype)
        if not pre:
            h = layer_norm(P, p + 'self_attn_layer_norm', h, 1e-5, dtype)
        r = h
        x = layer_norm(P, p + 'final_layer_norm', h, 1e-5, dtype) if pre else h
        x = linear(P, p + 'fc2', act(cfg['activation_function'], linear(P, p + 'fc1', x, dtype)), dtype)
        h = r + x
        if not pre:
            h = layer_norm(P, p + 'final_layer_norm', h, 1e-5, dtype)
    if pre and not cfg['_remove_final_layer_norm']:
        h = layer_norm(P, prefix + 'final_layer_norm', h, 1e-5, dtype)
    head = P(prefix + 'embed_tokens.weight', dtype)  # lm_head is tied to embed_tokens
    return h @ head.T, h


def opt_embed(P, dtype, input_ids, prefix='model.decoder.'):
    return P(prefix + 'embed_tokens.weight', dtype)[input_ids]


def opt_config(**kw):
    cfg = OrderedDict([
        ('_remove_final_layer_norm', False),
        ('activation_dropout', 0.0),
        ('activation_function', 'relu'),
        ('architectures', ['OPTForCausalLM']),
        ('attention_dropout', 0.0),
        ('bos_token_id', 2),
        ('do_layer_norm_before', True),
        ('dropout', 0.1),
        ('enable_bias', True),
        ('eos_token_id', 2),
        ('ffn_dim', 128),
        ('hidden_size', 64),
        ('init_std', 0.02),
        ('layer_norm_elementwise_affine', True),
        ('layerdrop', 0.0),
        ('max_position_embeddings', 64),
        ('model_type', 'opt'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('pad_token_id', 0),
        ('prefix', '</s>'),
        ('tie_word_embeddings', True),
        ('torch_dtype', 'float16'),
        ('transformers_version', None),
        ('use_cache', True),
        ('vocab_size', 316),
        ('word_embed_proj_dim', 64),
    ])
    cfg.update(kw)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# GPT-2 (GPT2LMHeadModel): transformer.*, Conv1D [in, out] weights, tied lm_head
# ----------------------------------------------------------------------------------------------------------------


def build_gpt2(P, cfg, legacy_buffers=True, emb_std=1.0):
    d, v, n = cfg['n_embd'], cfg['vocab_size'], cfg['n_positions']
    inner = cfg['n_inner'] or 4 * d
    P.embedding('transformer.wte.weight', v, d, std=emb_std)
    P.embedding('transformer.wpe.weight', n, d, std=0.3)
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}.'
        P.layer_norm(p + 'ln_1', d)
        if legacy_buffers:
            # GPT2Attention registered these as persistent buffers (bias: uint8 lower-triangular ones, masked_bias:
            # float32 -1e4) until transformers made them non-persistent; checkpoints saved then still carry them.
            # Current transformers ignores them when loading.
            tril = torch.tril(torch.ones((n, n), dtype=torch.uint8)).view(1, 1, n, n)
            P.buffer(p + 'attn.bias', tril, 'legacy causal-mask buffer; transformers ignores it on load')
            P.buffer(p + 'attn.masked_bias', torch.tensor(-1e4, dtype=torch.float32),
                     'legacy masked-value buffer; transformers ignores it on load')
        P.conv1d(p + 'attn.c_attn', d, 3 * d)
        P.conv1d(p + 'attn.c_proj', d, d)
        P.layer_norm(p + 'ln_2', d)
        P.conv1d(p + 'mlp.c_fc', d, inner)
        P.conv1d(p + 'mlp.c_proj', inner, d)
    P.layer_norm('transformer.ln_f', d)


def conv1d(P, prefix, x, dtype):
    return x @ P(prefix + '.weight', dtype) + P(prefix + '.bias', dtype)


def gpt2_forward(P, cfg, dtype, input_ids, attention_mask, position_ids):
    d, nh = cfg['n_embd'], cfg['n_head']
    hd = d // nh
    eps = cfg['layer_norm_epsilon']
    h = P('transformer.wte.weight', dtype)[input_ids] + P('transformer.wpe.weight', dtype)[position_ids]
    mask = causal_mask(attention_mask, dtype)
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}.'
        x = layer_norm(P, p + 'ln_1', h, eps, dtype)
        qkv = conv1d(P, p + 'attn.c_attn', x, dtype)
        q, k, v = (split_heads(t, nh) for t in qkv.split(d, dim=2))
        scale = hd ** -0.5 if cfg['scale_attn_weights'] else 1.0
        if cfg['scale_attn_by_inverse_layer_idx']:
            scale = scale / float(i + 1)
        a = merge_heads(attention(q, k, v, scale, mask))
        h = h + conv1d(P, p + 'attn.c_proj', a, dtype)
        x = layer_norm(P, p + 'ln_2', h, eps, dtype)
        x = conv1d(P, p + 'mlp.c_proj', act(cfg['activation_function'], conv1d(P, p + 'mlp.c_fc', x, dtype)), dtype)
        h = h + x
    h = layer_norm(P, 'transformer.ln_f', h, eps, dtype)
    return h @ P('transformer.wte.weight', dtype).T, h


def gpt2_config(**kw):
    cfg = OrderedDict([
        ('activation_function', 'gelu_new'),
        ('architectures', ['GPT2LMHeadModel']),
        ('attn_pdrop', 0.1),
        ('bos_token_id', 2),
        ('embd_pdrop', 0.1),
        ('eos_token_id', 2),
        ('initializer_range', 0.02),
        ('layer_norm_epsilon', 1e-5),
        ('model_type', 'gpt2'),
        ('n_ctx', 64),
        ('n_embd', 64),
        ('n_head', 4),
        ('n_inner', None),
        ('n_layer', 2),
        ('n_positions', 64),
        ('reorder_and_upcast_attn', False),
        ('resid_pdrop', 0.1),
        ('scale_attn_by_inverse_layer_idx', False),
        ('scale_attn_weights', True),
        ('summary_activation', None),
        ('summary_first_dropout', 0.1),
        ('summary_proj_to_labels', True),
        ('summary_type', 'cls_index'),
        ('summary_use_proj', True),
        ('torch_dtype', 'float32'),
        ('transformers_version', None),
        ('use_cache', True),
        ('vocab_size', 316),
    ])
    cfg.update(kw)
    return cfg


def causal_lm_position_ids(attention_mask):
    """What the plain forward uses without position_ids: 0..T-1 in every row (cache_position)."""
    b, t = attention_mask.shape
    return torch.arange(t, dtype=torch.int64)[None].expand(b, t).clone()


