"""Vision and text towers shared by several cases: the CLIP / SigLIP encoder layer, CLIPVisionTransformer,
CLIPTextTransformer, SiglipVisionTransformer (with its attention-pooling head), SiglipTextTransformer, and
Blip2VisionModel. Read from modeling_clip.py, modeling_siglip.py and modeling_blip_2.py."""

from collections import OrderedDict

import torch
import torch.nn.functional as F

from .common import act, attention, causal_mask, layer_norm, linear, merge_heads, padding_mask, split_heads

# ----------------------------------------------------------------------------------------------------------------
# CLIPEncoderLayer / SiglipEncoderLayer: pre-LN, self_attn.{k,v,q,out}_proj, mlp.fc1/fc2
# ----------------------------------------------------------------------------------------------------------------


def build_encoder(P, prefix, cfg):
    d, ff = cfg['hidden_size'], cfg['intermediate_size']
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layers.{i}.'
        for name in ('k_proj', 'v_proj', 'q_proj', 'out_proj'):
            P.linear(p + 'self_attn.' + name, d, d)
        P.layer_norm(p + 'layer_norm1', d)
        P.linear(p + 'mlp.fc1', d, ff)
        P.linear(p + 'mlp.fc2', ff, d)
        P.layer_norm(p + 'layer_norm2', d)


def encoder_layer(P, p, cfg, h, mask, dtype):
    nh = cfg['num_attention_heads']
    hd = cfg['hidden_size'] // nh
    eps = cfg['layer_norm_eps']
    x = layer_norm(P, p + 'layer_norm1', h, eps, dtype)
    q = split_heads(linear(P, p + 'self_attn.q_proj', x, dtype), nh)
    k = split_heads(linear(P, p + 'self_attn.k_proj', x, dtype), nh)
    v = split_heads(linear(P, p + 'self_attn.v_proj', x, dtype), nh)
    h = h + linear(P, p + 'self_attn.out_proj', merge_heads(attention(q, k, v, hd ** -0.5, mask)), dtype)
    x = layer_norm(P, p + 'layer_norm2', h, eps, dtype)
    x = linear(P, p + 'mlp.fc2', act(cfg['hidden_act'], linear(P, p + 'mlp.fc1', x, dtype)), dtype)
    return h + x


def run_encoder(P, prefix, cfg, h, mask, dtype, upto=None):
    """-> (last, hidden_states) where hidden_states[0] is the encoder input and [i] the output of layer i."""
    states = [h]
    n = cfg['num_hidden_layers'] if upto is None else upto
    for i in range(n):
        h = encoder_layer(P, f'{prefix}layers.{i}.', cfg, h, mask, dtype)
        states.append(h)
    return h, states


# ----------------------------------------------------------------------------------------------------------------
# CLIP
# ----------------------------------------------------------------------------------------------------------------


def build_clip_vision(P, prefix, cfg):
    """CLIPVisionTransformer under prefix (e.g. 'vision_model.')."""
    d, ps = cfg['hidden_size'], cfg['patch_size']
    n = (cfg['image_size'] // ps) ** 2 + 1
    P.param(prefix + 'embeddings.class_embedding', (d,), 0.5)
    P._store(prefix + 'embeddings.patch_embedding.weight',
             P.randn((d, cfg['num_channels'], ps, ps), 1.0 / (cfg['num_channels'] * ps * ps) ** 0.5))
    P.embedding(prefix + 'embeddings.position_embedding.weight', n, d, std=0.3)
    P.layer_norm(prefix + 'pre_layrnorm', d)
    build_encoder(P, prefix + 'encoder.', cfg)
    P.layer_norm(prefix + 'post_layernorm', d)


def clip_vision_forward(P, prefix, cfg, pixel_values, dtype, upto=None):
    """-> dict(last_hidden_state, pooler_output (post_layernorm of the CLS row), hidden_states)."""
    ps = cfg['patch_size']
    x = F.conv2d(pixel_values.to(dtype), P(prefix + 'embeddings.patch_embedding.weight', dtype), stride=ps)
    x = x.flatten(2).transpose(1, 2)
    cls = P(prefix + 'embeddings.class_embedding', dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + P(prefix + 'embeddings.position_embedding.weight', dtype)[None]
    x = layer_norm(P, prefix + 'pre_layrnorm', x, cfg['layer_norm_eps'], dtype)
    last, states = run_encoder(P, prefix + 'encoder.', cfg, x, None, dtype, upto)
    out = OrderedDict(hidden_states=states)
    if upto is None:
        out['last_hidden_state'] = last
        out['pooler_output'] = layer_norm(P, prefix + 'post_layernorm', last[:, 0], cfg['layer_norm_eps'], dtype)
    return out


def build_clip_text(P, prefix, cfg):
    d = cfg['hidden_size']
    P.embedding(prefix + 'embeddings.token_embedding.weight', cfg['vocab_size'], d, std=0.5)
    P.embedding(prefix + 'embeddings.position_embedding.weight', cfg['max_position_embeddings'], d, std=0.3)
    build_encoder(P, prefix + 'encoder.', cfg)
    P.layer_norm(prefix + 'final_layer_norm', d)


def clip_text_pool_index(input_ids, eos_token_id):
    """CLIPTextTransformer's pooling rule. Legacy configs (eos_token_id == 2, and current main's variant that keys
    on input_ids.max() == 49407) take argmax(input_ids); otherwise the FIRST position equal to eos_token_id."""
    if eos_token_id == 2:
        return input_ids.to(torch.int32).argmax(dim=-1)
    return (input_ids.to(torch.int32) == eos_token_id).int().argmax(dim=-1)


def clip_text_forward(P, prefix, cfg, input_ids, attention_mask, dtype):
    t = input_ids.shape[1]
    h = P(prefix + 'embeddings.token_embedding.weight', dtype)[input_ids] + \
        P(prefix + 'embeddings.position_embedding.weight', dtype)[:t][None]
    mask = causal_mask(attention_mask, dtype)
    last, _ = run_encoder(P, prefix + 'encoder.', cfg, h, mask, dtype)
    last = layer_norm(P, prefix + 'final_layer_norm', last, cfg['layer_norm_eps'], dtype)
    idx = clip_text_pool_index(input_ids, cfg['eos_token_id'])
    pooled = last[torch.arange(last.shape[0]), idx]
    return OrderedDict(last_hidden_state=last, pooler_output=pooled)


def clip_vision_config(**kw):
    cfg = OrderedDict([
        ('attention_dropout', 0.0),
        ('dropout', 0.0),
        ('hidden_act', 'quick_gelu'),
        ('hidden_size', 32),
        ('image_size', 32),
        ('initializer_factor', 1.0),
        ('initializer_range', 0.02),
        ('intermediate_size', 64),
        ('layer_norm_eps', 1e-5),
        ('model_type', 'clip_vision_model'),
        ('num_attention_heads', 4),
        ('num_channels', 3),
        ('num_hidden_layers', 2),
        ('patch_size', 8),
        ('projection_dim', 24),
    ])
    cfg.update(kw)
    return cfg


def clip_text_config(**kw):
    cfg = OrderedDict([
        ('attention_dropout', 0.0),
        ('bos_token_id', 317),
        ('dropout', 0.0),
        ('eos_token_id', 316),
        ('hidden_act', 'quick_gelu'),
        ('hidden_size', 40),
        ('initializer_factor', 1.0),
        ('initializer_range', 0.02),
        ('intermediate_size', 80),
        ('layer_norm_eps', 1e-5),
        ('max_position_embeddings', 16),
        ('model_type', 'clip_text_model'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('pad_token_id', 316),
        ('projection_dim', 24),
        ('vocab_size', 318),
    ])
    cfg.update(kw)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# SigLIP
# ----------------------------------------------------------------------------------------------------------------


def build_siglip_vision(P, prefix, cfg):
    d, ps = cfg['hidden_size'], cfg['patch_size']
    n = (cfg['image_size'] // ps) ** 2
    P._store(prefix + 'embeddings.patch_embedding.weight',
             P.randn((d, cfg['num_channels'], ps, ps), 1.0 / (cfg['num_channels'] * ps * ps) ** 0.5))
    P._store(prefix + 'embeddings.patch_embedding.bias', P.randn((d,), 0.1))
    P.embedding(prefix + 'embeddings.position_embedding.weight', n, d, std=0.3)
    build_encoder(P, prefix + 'encoder.', cfg)
    P.layer_norm(prefix + 'post_layernorm', d)
    if cfg.get('vision_use_head', True):
        h = prefix + 'head.'
        P.param(h + 'probe', (1, 1, d), 0.5)
        # torch.nn.MultiheadAttention(d, heads, batch_first=True): packed in_proj_weight [3d, d] (q|k|v rows),
        # in_proj_bias [3d], out_proj (a Linear)
        P._store(h + 'attention.in_proj_weight', P.randn((3 * d, d), d ** -0.5))
        P._store(h + 'attention.in_proj_bias', P.randn((3 * d,), 0.1))
        P.linear(h + 'attention.out_proj', d, d)
        P.layer_norm(h + 'layernorm', d)
        P.linear(h + 'mlp.fc1', d, cfg['intermediate_size'])
        P.linear(h + 'mlp.fc2', cfg['intermediate_size'], d)


def siglip_vision_forward(P, prefix, cfg, pixel_values, dtype):
    ps = cfg['patch_size']
    eps = cfg['layer_norm_eps']
    x = F.conv2d(pixel_values.to(dtype), P(prefix + 'embeddings.patch_embedding.weight', dtype),
                 P(prefix + 'embeddings.patch_embedding.bias', dtype), stride=ps)
    x = x.flatten(2).transpose(1, 2) + P(prefix + 'embeddings.position_embedding.weight', dtype)[None]
    last, states = run_encoder(P, prefix + 'encoder.', cfg, x, None, dtype)
    last = layer_norm(P, prefix + 'post_layernorm', last, eps, dtype)
    out = OrderedDict(last_hidden_state=last, hidden_states=states)
    if cfg.get('vision_use_head', True):
        h = prefix + 'head.'
        d, nh = cfg['hidden_size'], cfg['num_attention_heads']
        b = last.shape[0]
        probe = P(h + 'probe', dtype).repeat(b, 1, 1)
        w, bias = P(h + 'attention.in_proj_weight', dtype), P(h + 'attention.in_proj_bias', dtype)
        q = split_heads(F.linear(probe, w[:d], bias[:d]), nh)
        k = split_heads(F.linear(last, w[d:2 * d], bias[d:2 * d]), nh)
        v = split_heads(F.linear(last, w[2 * d:], bias[2 * d:]), nh)
        a = linear(P, h + 'attention.out_proj', merge_heads(attention(q, k, v, (d // nh) ** -0.5)), dtype)
        r = a
        x = layer_norm(P, h + 'layernorm', a, eps, dtype)
        x = linear(P, h + 'mlp.fc2', act(cfg['hidden_act'], linear(P, h + 'mlp.fc1', x, dtype)), dtype)
        out['pooler_output'] = (r + x)[:, 0]
    return out


def build_siglip_text(P, prefix, cfg):
    d = cfg['hidden_size']
    P.embedding(prefix + 'embeddings.token_embedding.weight', cfg['vocab_size'], d, std=0.5)
    P.embedding(prefix + 'embeddings.position_embedding.weight', cfg['max_position_embeddings'], d, std=0.3)
    build_encoder(P, prefix + 'encoder.', cfg)
    P.layer_norm(prefix + 'final_layer_norm', d)
    P.linear(prefix + 'head', d, cfg['projection_size'])


def siglip_text_forward(P, prefix, cfg, input_ids, attention_mask, dtype):
    """SigLIP's text encoder is bidirectional (no causal mask); pooled = head(last position)."""
    t = input_ids.shape[1]
    h = P(prefix + 'embeddings.token_embedding.weight', dtype)[input_ids] + \
        P(prefix + 'embeddings.position_embedding.weight', dtype)[:t][None]
    mask = padding_mask(attention_mask, dtype) if attention_mask is not None else None
    last, _ = run_encoder(P, prefix + 'encoder.', cfg, h, mask, dtype)
    last = layer_norm(P, prefix + 'final_layer_norm', last, cfg['layer_norm_eps'], dtype)
    pooled = linear(P, prefix + 'head', last[:, -1], dtype)
    return OrderedDict(last_hidden_state=last, pooler_output=pooled)


def siglip_vision_config(**kw):
    cfg = OrderedDict([
        ('attention_dropout', 0.0),
        ('hidden_act', 'gelu_pytorch_tanh'),
        ('hidden_size', 32),
        ('image_size', 32),
        ('intermediate_size', 64),
        ('layer_norm_eps', 1e-6),
        ('model_type', 'siglip_vision_model'),
        ('num_attention_heads', 4),
        ('num_channels', 3),
        ('num_hidden_layers', 2),
        ('patch_size', 8),
        ('vision_use_head', True),
    ])
    cfg.update(kw)
    return cfg


def siglip_text_config(**kw):
    cfg = OrderedDict([
        ('attention_dropout', 0.0),
        ('bos_token_id', None),
        ('eos_token_id', 2),
        ('hidden_act', 'gelu_pytorch_tanh'),
        ('hidden_size', 40),
        ('intermediate_size', 80),
        ('layer_norm_eps', 1e-6),
        ('max_position_embeddings', 16),
        ('model_type', 'siglip_text_model'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('pad_token_id', 2),
        ('projection_size', 32),
        ('vocab_size', 316),
    ])
    cfg.update(kw)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# Blip2VisionModel / InstructBlipVisionModel: class + learned position Parameters, fused qkv with q|0|v bias,
# projection, post_layernorm (applied to the sequence, and once more to the pooled CLS row)
# ----------------------------------------------------------------------------------------------------------------


def build_blip_vision(P, prefix, cfg):
    d, ps = cfg['hidden_size'], cfg['patch_size']
    n = (cfg['image_size'] // ps) ** 2 + 1
    P.param(prefix + 'embeddings.class_embedding', (1, 1, d), 0.5)
    P.param(prefix + 'embeddings.position_embedding', (1, n, d), 0.3)
    P._store(prefix + 'embeddings.patch_embedding.weight', P.randn((d, 3, ps, ps), 1.0 / (3 * ps * ps) ** 0.5))
    P._store(prefix + 'embeddings.patch_embedding.bias', P.randn((d,), 0.1))
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}encoder.layers.{i}.'
        P.linear(p + 'self_attn.qkv', d, 3 * d, bias=False)
        if cfg['qkv_bias']:
            # the HF conversion stores cat(q_bias, zeros, v_bias) as self_attn.qkv.bias (no q_bias / v_bias names)
            qb, vb = P.randn((d,), 0.1), P.randn((d,), 0.1)
            P._store(p + 'self_attn.qkv.bias', torch.cat([qb, torch.zeros(d, dtype=qb.dtype), vb]))
        P.linear(p + 'self_attn.projection', d, d)
        P.layer_norm(p + 'layer_norm1', d)
        P.linear(p + 'mlp.fc1', d, cfg['intermediate_size'])
        P.linear(p + 'mlp.fc2', cfg['intermediate_size'], d)
        P.layer_norm(p + 'layer_norm2', d)
    P.layer_norm(prefix + 'post_layernorm', d)


def blip_vision_forward(P, prefix, cfg, pixel_values, dtype):
    d, nh, ps = cfg['hidden_size'], cfg['num_attention_heads'], cfg['patch_size']
    hd = d // nh
    eps = cfg['layer_norm_eps']
    x = F.conv2d(pixel_values.to(dtype), P(prefix + 'embeddings.patch_embedding.weight', dtype),
                 P(prefix + 'embeddings.patch_embedding.bias', dtype), stride=ps)
    x = x.flatten(2).transpose(1, 2)
    cls = P(prefix + 'embeddings.class_embedding', dtype).expand(x.shape[0], 1, -1)
    h = torch.cat([cls, x], dim=1)
    h = h + P(prefix + 'embeddings.position_embedding', dtype)[:, :h.shape[1]]
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}encoder.layers.{i}.'
        y = layer_norm(P, p + 'layer_norm1', h, eps, dtype)
        qkv = linear(P, p + 'self_attn.qkv', y, dtype, bias=cfg['qkv_bias'])
        b, t, _ = qkv.shape
        qkv = qkv.reshape(b, t, 3, nh, hd).permute(2, 0, 3, 1, 4)
        a = merge_heads(attention(qkv[0], qkv[1], qkv[2], hd ** -0.5))
        h = h + linear(P, p + 'self_attn.projection', a, dtype)
        y = layer_norm(P, p + 'layer_norm2', h, eps, dtype)
        h = h + linear(P, p + 'mlp.fc2', act(cfg['hidden_act'], linear(P, p + 'mlp.fc1', y, dtype)), dtype)
    last = layer_norm(P, prefix + 'post_layernorm', h, eps, dtype)
    pooled = layer_norm(P, prefix + 'post_layernorm', last[:, 0], eps, dtype)
    return OrderedDict(last_hidden_state=last, pooler_output=pooled)
