"""Cases blip2, instructblip, llava, llava_new. Read from modeling_blip_2.py, modeling_instructblip.py,
modeling_llava.py, their configuration_*.py and processing_*.py."""

import os
from collections import OrderedDict

import torch

from . import decoders as D
from . import towers as T
from .common import (
    TF_VERSION, Tokenizer, act, attention, blip_preprocessor_config, clip_image_processor,
    clip_preprocessor_config, fixed_size_image_processor, fixture_picture, generate_position_ids, generation_config,
    greedy, image_batch, layer_norm, linear, merge_heads, pad_batch, split_heads, template, write_json,
    write_tokenizer, zero_padded,
)
from .encoder_cases import save_png
from .llm_cases import LLM_SPECIALS, llm_tokenizer_config
from .runner import Case

IMAGE = 32
LEGACY_VERSION = '4.47.1'  # the last releases that still had the legacy BLIP-2 merge and the classic LLaVA names
PNG_NOTE = ('input.pixel_values row 0 is output.pixel_values_from_png: CASE.image.png (48x40 RGB) through the slow '
            '(PIL) image processor of preprocessor_config.json; row 1 is N(0,1) pixels.')
GREEDY_NOTE = ('greedy.*: argmax continuation by full re-forward every step (no KV cache; the image part is '
               're-encoded each step, which equals what the cached generate computes), stopping rules off, '
               'greedy.tokens holds only the new tokens; greedy.margin = top1 - top2 logit per step.')

# ----------------------------------------------------------------------------------------------------------------
# Q-Former (Blip2QFormerModel / InstructBlipQFormerModel)
# ----------------------------------------------------------------------------------------------------------------


def build_qformer_layer_attention(P, p, d, kv_dim):
    P.linear(p + 'attention.query', d, d)
    P.linear(p + 'attention.key', kv_dim, d)
    P.linear(p + 'attention.value', kv_dim, d)
    P.linear(p + 'output.dense', d, d)
    P.layer_norm(p + 'output.LayerNorm', d)


def build_qformer_encoder(P, prefix, cfg, text_ffn):
    d, ff = cfg['hidden_size'], cfg['intermediate_size']
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layer.{i}.'
        build_qformer_layer_attention(P, p + 'attention.', d, d)
        if i % cfg['cross_attention_frequency'] == 0:
            build_qformer_layer_attention(P, p + 'crossattention.', d, cfg['encoder_hidden_size'])
        if text_ffn:
            P.linear(p + 'intermediate.dense', d, ff)
            P.linear(p + 'output.dense', ff, d)
            P.layer_norm(p + 'output.LayerNorm', d)
        P.linear(p + 'intermediate_query.dense', d, ff)
        P.linear(p + 'output_query.dense', ff, d)
        P.layer_norm(p + 'output_query.LayerNorm', d)


def qformer_attention(P, p, cfg, h, kv, mask, dtype):
    """Blip2QFormerAttention: scores / sqrt(head) + mask, softmax, then output.LayerNorm(dense(ctx) + h)."""
    nh = cfg['num_attention_heads']
    hd = cfg['hidden_size'] // nh
    q = split_heads(linear(P, p + 'attention.query', h, dtype), nh)
    k = split_heads(linear(P, p + 'attention.key', kv, dtype), nh)
    v = split_heads(linear(P, p + 'attention.value', kv, dtype), nh)
    ctx = merge_heads(attention(q, k, v, hd ** -0.5, mask))
    return layer_norm(P, p + 'output.LayerNorm', linear(P, p + 'output.dense', ctx, dtype) + h,
                      cfg['layer_norm_eps'], dtype)


def ffn(P, p_inter, p_out, cfg, x, dtype):
    y = act(cfg['hidden_act'], linear(P, p_inter + '.dense', x, dtype))
    return layer_norm(P, p_out + '.LayerNorm', linear(P, p_out + '.dense', y, dtype) + x, cfg['layer_norm_eps'], dtype)


def qformer_encoder(P, prefix, cfg, h, mask, image_embeds, query_length, dtype):
    for i in range(cfg['num_hidden_layers']):
        p = f'{prefix}layer.{i}.'
        a = qformer_attention(P, p + 'attention.', cfg, h, h, mask, dtype)
        qa = a[:, :query_length]
        if i % cfg['cross_attention_frequency'] == 0:
            # image attention mask is all ones -> the inverted encoder mask adds nothing
            qa = qformer_attention(P, p + 'crossattention.', cfg, qa, image_embeds, None, dtype)
        out = ffn(P, p + 'intermediate_query', p + 'output_query', cfg, qa, dtype)
        if a.shape[1] > query_length:
            out = torch.cat([out, ffn(P, p + 'intermediate', p + 'output', cfg, a[:, query_length:], dtype)], dim=1)
        h = out
    return h


def qformer_mask(attention_mask, dtype):
    """Blip2/InstructBlip QFormer get_extended_attention_mask: (1 - mask) * -10000 on the keys."""
    return (1.0 - attention_mask.to(dtype)[:, None, None, :]) * -10000.0


def blip_vision_config(model_type):
    return OrderedDict([
        ('attention_dropout', 0.0),
        ('hidden_act', 'gelu'),
        ('hidden_size', 48),
        ('image_size', IMAGE),
        ('initializer_range', 1e-10),
        ('intermediate_size', 96),
        ('layer_norm_eps', 1e-5),
        ('model_type', model_type),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('patch_size', 8),
        ('qkv_bias', True),
    ])


def qformer_config(model_type, **kw):
    cfg = OrderedDict([
        ('attention_probs_dropout_prob', 0.1),
        ('cross_attention_frequency', 2),
        ('encoder_hidden_size', 48),
        ('hidden_act', 'gelu'),
        ('hidden_dropout_prob', 0.1),
        ('hidden_size', 32),
        ('initializer_range', 0.02),
        ('intermediate_size', 64),
        ('layer_norm_eps', 1e-12),
        ('max_position_embeddings', 32),
        ('model_type', model_type),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('pad_token_id', 0),
        ('position_embedding_type', 'absolute'),
        ('vocab_size', 316),
    ])
    cfg.update(kw)
    return OrderedDict(sorted(cfg.items()))


NUM_QUERY = 8


class _BlipCase(Case):
    has_greedy = True
    version = LEGACY_VERSION

    def pixel_inputs(self, gen):
        self.png = fixed_size_image_processor(fixture_picture(), self.pre)
        return image_batch(gen, self.png, IMAGE)


# ----------------------------------------------------------------------------------------------------------------
# BLIP-2 (OPT language model), legacy merge
# ----------------------------------------------------------------------------------------------------------------

OPT_TOKENIZER = Tokenizer(post=template([('</s>', 2)], []))
OPT_SPECIALS = OrderedDict(bos_token='</s>', eos_token='</s>', pad_token='<pad>', unk_token='<unk>')
BLIP2_PROMPTS = ['question : what shape is red ? answer :', 'question : which shape is blue ? answer :']


class Blip2(_BlipCase):
    name = 'blip2'
    cls = 'Blip2ForConditionalGeneration'
    architecture = 'blip-2'
    stored_dtype = 'float32'
    base_seed = 1200
    notes = ('Blip2ForConditionalGeneration in float32. Vision: class_embedding [1,1,d] and position_embedding '
             '[1,17,d] Parameters, patch conv with bias, fused self_attn.qkv.weight with ONE bias '
             'self_attn.qkv.bias = cat(q_bias, zeros, v_bias) (that is how the HF conversion stores LAVIS\'s '
             'q_bias/v_bias; there are no q_bias/v_bias names), self_attn.projection, gelu, post_layernorm '
             'applied to the sequence (image_embeds, what the Q-Former cross-attends to) and once more to the CLS '
             'row (pooler). layer_norm_eps 1e-5 is written explicitly. Q-Former: query_tokens -> qformer.layernorm '
             '-> layers; self-attention, cross-attention to image_embeds only in layers i % '
             'cross_attention_frequency == 0 (layer 0 of 2), FFN intermediate_query/output_query (post-LN, eps '
             '1e-12); use_qformer_text_input false, so the text FFN (intermediate/output) does not exist. '
             'language_projection, then the OPT language_model (language_model.model.decoder.*, lm_head tied and '
             'left out). LEGACY merge: the config has no image_token_index and input_ids hold no image tokens; '
             'the 8 projected query outputs are PREPENDED to the embedded prompt (which starts with </s>, id 2) '
             'and the attention mask is extended with 8 ones; OPT numbers positions from that mask. Both prompts '
             'have the same length, so nothing is padded and the result equals current transformers with '
             'input_ids = [image_token] * 8 + input_ids. output.logits covers the whole prepended sequence '
             '[B, 8 + T, V]. ' + GREEDY_NOTE + ' ' + PNG_NOTE)

    def build(self, P):
        v = blip_vision_config('blip_2_vision_model')
        q = qformer_config('blip_2_qformer', use_qformer_text_input=False)
        t = D.opt_config(torch_dtype='float32')
        del t['transformers_version']
        self.config = OrderedDict([
            ('architectures', ['Blip2ForConditionalGeneration']),
            ('initializer_factor', 1.0),
            ('initializer_range', 0.02),
            ('model_type', 'blip-2'),
            ('num_query_tokens', NUM_QUERY),
            ('qformer_config', q),
            ('text_config', t),
            ('tie_word_embeddings', True),
            ('torch_dtype', 'float32'),
            ('transformers_version', None),
            ('use_decoder_only_language_model', True),
            ('vision_config', v),
        ])
        P.param('query_tokens', (1, NUM_QUERY, q['hidden_size']), 0.5)
        T.build_blip_vision(P, 'vision_model.', v)
        P.layer_norm('qformer.layernorm', q['hidden_size'])
        build_qformer_encoder(P, 'qformer.encoder.', q, text_ffn=False)
        P.linear('language_projection', q['hidden_size'], t['hidden_size'])
        D.build_opt(P, t, prefix='language_model.model.decoder.', emb_std=0.1)
        self.pre = blip_preprocessor_config(IMAGE, 'Blip2Processor')

    def inputs(self, gen):
        rows = [OPT_TOKENIZER.encode(p) for p in BLIP2_PROMPTS]
        assert len(set(map(len, rows))) == 1
        ids, mask = pad_batch(rows, 0, 'left')
        return OrderedDict(input_ids=ids, attention_mask=mask, pixel_values=self.pixel_inputs(gen))

    def image_part(self, P, dtype):
        c = self.config
        vis = T.blip_vision_forward(P, 'vision_model.', c['vision_config'], self.inp['pixel_values'], dtype)
        qc = c['qformer_config']
        b = vis['last_hidden_state'].shape[0]
        h = layer_norm(P, 'qformer.layernorm', P('query_tokens', dtype).expand(b, -1, -1), qc['layer_norm_eps'], dtype)
        q_out = qformer_encoder(P, 'qformer.encoder.', qc, h, None, vis['last_hidden_state'], NUM_QUERY, dtype)
        return vis, q_out, linear(P, 'language_projection', q_out, dtype)

    def lm_logits(self, P, dtype, lm_inputs, ids, mask):
        t = self.config['text_config']
        emb = torch.cat([lm_inputs, D.opt_embed(P, dtype, ids, 'language_model.model.decoder.')], dim=1)
        full_mask = torch.cat([torch.ones(mask.shape[0], NUM_QUERY, dtype=mask.dtype), mask], dim=1)
        return D.opt_forward(P, t, dtype, emb, full_mask, None, 'language_model.model.decoder.')[0]

    def compute(self, P, dtype):
        vis, q_out, lm_in = self.image_part(P, dtype)
        ids, mask = self.inp['input_ids'], self.inp['attention_mask']
        logits = self.lm_logits(P, dtype, lm_in, ids, mask)
        toks, margin = greedy(lambda i, m: self.lm_logits(P, dtype, lm_in, i, m), ids, mask)
        return OrderedDict([
            ('output.image_embeds', vis['last_hidden_state']),
            ('output.vision_pooler_output', vis['pooler_output']),
            ('output.qformer_last_hidden_state', q_out),
            ('output.language_model_inputs', lm_in),
            ('output.logits', logits),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
            ('greedy.input_ids', ids.clone()),
            ('greedy.attention_mask', mask.clone()),
            ('greedy.tokens', toks),
            ('greedy.margin', margin),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, OPT_TOKENIZER, OPT_SPECIALS, llm_tokenizer_config(True))
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        write_json(os.path.join(folder, 'processor_config.json'),
                   OrderedDict(num_query_tokens=None, processor_class='Blip2Processor'))
        generation_config(folder, 2, 2, 0, LEGACY_VERSION)
        save_png(folder)


# ----------------------------------------------------------------------------------------------------------------
# InstructBLIP (LLaMA language model), legacy merge
# ----------------------------------------------------------------------------------------------------------------

LLAMA_TOKENIZER = Tokenizer()
QFORMER_TOKENIZER = Tokenizer(post=template([('[CLS]', 9)], [('[SEP]', 10)]))
INSTRUCT_PROMPTS = ['what is the red shape ?', 'what color is the square ?']


class InstructBlip(_BlipCase):
    name = 'instructblip'
    cls = 'InstructBlipForConditionalGeneration'
    architecture = 'instructblip'
    stored_dtype = 'float16'
    base_seed = 1300
    notes = ('InstructBlipForConditionalGeneration stored in float16 (outputs computed in float64 from the stored '
             'values). Vision tower as BLIP-2 (fused qkv with cat(q, 0, v) bias). The Q-Former also reads the '
             'instruction: qformer.embeddings = LayerNorm(cat(query_tokens, word_embeddings(qformer_input_ids) + '
             'position_embeddings(0..L-1))) (eps 1e-12, queries get no position embedding), self-attention over '
             'queries + instruction with mask cat(ones(8), qformer_attention_mask), cross-attention (layer 0) and '
             'intermediate_query/output_query for the 8 query rows, intermediate/output for the instruction rows; '
             'output.qformer_last_hidden_state is the whole [B, 8 + L, d] sequence and the first 8 rows go through '
             'language_projection. No qformer.layernorm (the LayerNorm is qformer.embeddings.layernorm). LLaMA '
             'language model (language_model.model.*, untied language_model.lm_head.weight). qformer_input_ids '
             'come from qformer_tokenizer/ ([CLS] ... [SEP]), input_ids from the root tokenizer (<s> ...). LEGACY '
             'merge: image_token_index null, the projected queries are PREPENDED to the embedded prompt and the '
             'mask extended with ones; LLaMA positions 0..8+T-1. Both prompts have the same length, so nothing '
             'is padded and the result equals current transformers (which only supports image tokens) with '
             'input_ids = [image_token] * 8 + input_ids. output.logits is [B, 8 + T, V]. ' + GREEDY_NOTE + ' '
             + PNG_NOTE)

    def build(self, P):
        v = blip_vision_config('instructblip_vision_model')
        q = qformer_config('instructblip_qformer')
        t = D.llama_config(torch_dtype='float16', num_key_value_heads=4, intermediate_size=96)
        del t['transformers_version']
        self.config = OrderedDict([
            ('architectures', ['InstructBlipForConditionalGeneration']),
            ('image_token_index', None),
            ('initializer_factor', 1.0),
            ('initializer_range', 0.02),
            ('model_type', 'instructblip'),
            ('num_query_tokens', NUM_QUERY),
            ('qformer_config', q),
            ('text_config', t),
            ('tie_word_embeddings', False),
            ('torch_dtype', 'float16'),
            ('transformers_version', None),
            ('use_decoder_only_language_model', True),
            ('vision_config', v),
        ])
        d = q['hidden_size']
        P.param('query_tokens', (1, NUM_QUERY, d), 0.5)
        T.build_blip_vision(P, 'vision_model.', v)
        P.embedding('qformer.embeddings.word_embeddings.weight', q['vocab_size'], d, std=0.5)
        P.embedding('qformer.embeddings.position_embeddings.weight', q['max_position_embeddings'], d, std=0.3)
        P.layer_norm('qformer.embeddings.layernorm', d)
        build_qformer_encoder(P, 'qformer.encoder.', q, text_ffn=True)
        P.linear('language_projection', d, t['hidden_size'])
        D.build_llama(P, t, model_prefix='language_model.model.', head_name='language_model.lm_head.weight')
        self.pre = blip_preprocessor_config(IMAGE, 'InstructBlipProcessor')

    def inputs(self, gen):
        rows = [LLAMA_TOKENIZER.encode(p) for p in INSTRUCT_PROMPTS]
        qrows = [QFORMER_TOKENIZER.encode(p) for p in INSTRUCT_PROMPTS]
        assert len(set(map(len, rows))) == 1 and len(set(map(len, qrows))) == 1
        ids, mask = pad_batch(rows, 0, 'left')
        qids, qmask = pad_batch(qrows, 0, 'right')
        return OrderedDict(input_ids=ids, attention_mask=mask, qformer_input_ids=qids, qformer_attention_mask=qmask,
                           pixel_values=self.pixel_inputs(gen))

    def image_part(self, P, dtype):
        c = self.config
        qc = c['qformer_config']
        vis = T.blip_vision_forward(P, 'vision_model.', c['vision_config'], self.inp['pixel_values'], dtype)
        qids, qmask = self.inp['qformer_input_ids'], self.inp['qformer_attention_mask']
        b, l = qids.shape
        words = P('qformer.embeddings.word_embeddings.weight', dtype)[qids] + \
            P('qformer.embeddings.position_embeddings.weight', dtype)[:l][None]
        h = torch.cat([P('query_tokens', dtype).expand(b, -1, -1), words], dim=1)
        h = layer_norm(P, 'qformer.embeddings.layernorm', h, qc['layer_norm_eps'], dtype)
        full = torch.cat([torch.ones(b, NUM_QUERY, dtype=qmask.dtype), qmask], dim=1)
        out = qformer_encoder(P, 'qformer.encoder.', qc, h, qformer_mask(full, dtype), vis['last_hidden_state'],
                              NUM_QUERY, dtype)
        return vis, out, linear(P, 'language_projection', out[:, :NUM_QUERY], dtype)

    def lm_logits(self, P, dtype, lm_inputs, ids, mask):
        t = self.config['text_config']
        emb = torch.cat([lm_inputs, D.llama_embed(P, t, dtype, ids, 'language_model.model.')], dim=1)
        full = torch.cat([torch.ones(mask.shape[0], NUM_QUERY, dtype=mask.dtype), mask], dim=1)
        pos = generate_position_ids(full)  # == 0..L-1: nothing is padded
        return D.llama_forward(P, t, dtype, emb, full, pos, 'language_model.model.',
                               'language_model.lm_head.weight')[0]

    def compute(self, P, dtype):
        vis, q_out, lm_in = self.image_part(P, dtype)
        ids, mask = self.inp['input_ids'], self.inp['attention_mask']
        logits = self.lm_logits(P, dtype, lm_in, ids, mask)
        toks, margin = greedy(lambda i, m: self.lm_logits(P, dtype, lm_in, i, m), ids, mask)
        return OrderedDict([
            ('output.image_embeds', vis['last_hidden_state']),
            ('output.vision_pooler_output', vis['pooler_output']),
            ('output.qformer_last_hidden_state', q_out),
            ('output.language_model_inputs', lm_in),
            ('output.logits', logits),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
            ('greedy.input_ids', ids.clone()),
            ('greedy.attention_mask', mask.clone()),
            ('greedy.tokens', toks),
            ('greedy.margin', margin),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, LLAMA_TOKENIZER, LLM_SPECIALS, llm_tokenizer_config(True))
        write_tokenizer(os.path.join(folder, 'qformer_tokenizer'), QFORMER_TOKENIZER,
                        OrderedDict(bos_token='[DEC]', cls_token='[CLS]', mask_token='[MASK]', pad_token='<pad>',
                                    sep_token='[SEP]', unk_token='<unk>'),
                        OrderedDict(do_lower_case=True, model_max_length=32, padding_side='right',
                                    truncation_side='left', extra_special_tokens={}))
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        write_json(os.path.join(folder, 'processor_config.json'),
                   OrderedDict(num_query_tokens=None, processor_class='InstructBlipProcessor'))
        generation_config(folder, 1, 2, 0, LEGACY_VERSION)
        save_png(folder)


# ----------------------------------------------------------------------------------------------------------------
# LLaVA (CLIP vision tower + 2-layer gelu projector + LLaMA), classic and current layouts
# ----------------------------------------------------------------------------------------------------------------

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
LLAVA_QUESTIONS = ['what shape is red ?', 'where is the blue square ?']
IMAGE_TOKEN = 4
NUM_IMAGE_TOKENS = (IMAGE // 8) ** 2  # patches; strategy 'default' drops CLS: (32/8)^2 + 1 - 1


def llava_prompt(question):
    # what the chat template renders for [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', ...}]}]
    # with add_generation_prompt, and what LlavaProcessor then expands ('<image>' -> 16 x '<image>')
    return 'USER: ' + '<image>' * NUM_IMAGE_TOKENS + '\n' + question + ' ASSISTANT:'


class _Llava(Case):
    has_greedy = True
    cls = 'LlavaForConditionalGeneration'
    architecture = 'llava'
    feature_layer = -2
    new_layout = False

    def names(self):
        if self.new_layout:
            return 'model.vision_tower.vision_model.', 'model.multi_modal_projector.', 'model.language_model.', \
                'lm_head.weight'
        return 'vision_tower.vision_model.', 'multi_modal_projector.', 'language_model.model.', \
            'language_model.lm_head.weight'

    def build(self, P):
        v = T.clip_vision_config(projection_dim=24)
        t = D.llama_config(torch_dtype=self.stored_dtype, num_key_value_heads=4, intermediate_size=96)
        del t['transformers_version']
        self.config = OrderedDict([
            ('architectures', ['LlavaForConditionalGeneration']),
            ('image_seq_length', NUM_IMAGE_TOKENS),
            ('image_token_index', IMAGE_TOKEN),
            ('model_type', 'llava'),
            ('multimodal_projector_bias', True),
            ('projector_hidden_act', 'gelu'),
            ('text_config', t),
            ('tie_word_embeddings', False),
            ('torch_dtype', self.stored_dtype),
            ('transformers_version', None),
            ('vision_config', v),
            ('vision_feature_layer', self.feature_layer),
            ('vision_feature_select_strategy', 'default'),
        ])
        if not self.new_layout:
            # multimodal_projector_bias arrived after the classic layout's releases; readers must default it to true
            del self.config['multimodal_projector_bias']
        vis, proj, lm, head = self.names()
        # module order: LlavaForConditionalGeneration(vision_tower, multi_modal_projector, language_model) or
        # LlavaForConditionalGeneration(model=LlavaModel(vision_tower, multi_modal_projector, language_model), lm_head)
        T.build_clip_vision(P, vis, v)
        P.linear(proj + 'linear_1', v['hidden_size'], t['hidden_size'])
        P.linear(proj + 'linear_2', t['hidden_size'], t['hidden_size'])
        if self.new_layout:
            D.build_llama(P, dict(t, tie_word_embeddings=True), model_prefix=lm)  # lm_head registered last
            P.linear(head[:-len('.weight')], t['hidden_size'], t['vocab_size'], bias=False)
        else:
            D.build_llama(P, t, model_prefix=lm, head_name=head)
        n = v['num_hidden_layers']
        self.vision_layers_needed = n + 1 + self.feature_layer  # hidden_states[k] needs layers 0..k-1
        for i in range(self.vision_layers_needed, n):
            P.mark_unused_prefix(f'{vis}encoder.layers.{i}.',
                                 f'vision_feature_layer {self.feature_layer}: layer {i} does not reach the output')
        P.mark_unused_prefix(vis + 'post_layernorm.', 'LLaVA takes hidden_states, never the pooled output')
        self.pre = clip_preprocessor_config(IMAGE, 'LlavaProcessor')

    def inputs(self, gen):
        self.png = clip_image_processor(fixture_picture(), self.pre)
        rows = [LLAMA_TOKENIZER.encode(llava_prompt(q)) for q in LLAVA_QUESTIONS]
        ids, mask = pad_batch(rows, 0, 'left')
        b, t = ids.shape
        pos = torch.arange(t, dtype=torch.int64)[None].expand(b, t).clone()
        return OrderedDict(input_ids=ids, attention_mask=mask, position_ids=pos,
                           pixel_values=image_batch(gen, self.png, IMAGE))

    def image_features(self, P, dtype):
        vis, proj, _, _ = self.names()
        v = self.config['vision_config']
        out = T.clip_vision_forward(P, vis, v, self.inp['pixel_values'], dtype, upto=self.vision_layers_needed)
        states = out['hidden_states']  # hidden_states[0 .. vision_layers_needed] of the full tower
        sel = states[-1][:, 1:]  # = hidden_states[vision_feature_layer]; 'default' drops the CLS row
        x = linear(P, proj + 'linear_1', sel, dtype)
        x = linear(P, proj + 'linear_2', act(self.config['projector_hidden_act'], x), dtype)
        return states, x

    def lm_logits(self, P, dtype, feats, ids, mask, pos):
        _, _, lm, head = self.names()
        t = self.config['text_config']
        emb = D.llama_embed(P, t, dtype, ids, lm).clone()
        where = ids == IMAGE_TOKEN
        assert int(where.sum()) == feats.shape[0] * feats.shape[1]
        emb[where] = feats.reshape(-1, feats.shape[-1])  # masked_scatter: image rows in order
        return D.llama_forward(P, t, dtype, emb, mask, pos, lm, head)[0]

    def compute(self, P, dtype):
        states, feats = self.image_features(P, dtype)
        ids, mask, pos = self.inp['input_ids'], self.inp['attention_mask'], self.inp['position_ids']
        logits = self.lm_logits(P, dtype, feats, ids, mask, pos)
        if dtype == torch.float64:  # RoPE: counting positions from the first real token changes nothing
            other = self.lm_logits(P, dtype, feats, ids, mask, generate_position_ids(mask))
            real = mask.bool()
            assert torch.allclose(other[real], logits[real], rtol=0, atol=1e-9 * float(logits.abs().max()))
        toks, margin = greedy(lambda i, m: self.lm_logits(P, dtype, feats, i, m, generate_position_ids(m)), ids, mask)
        out = OrderedDict()
        out['output.image_features'] = feats
        for k, s in enumerate(states):
            out[f'output.vision_hidden_states.{k}'] = s
        out['output.logits'] = zero_padded(logits, mask)
        out['output.pixel_values_from_png'] = torch.from_numpy(self.png.copy())[None].to(dtype)
        out['greedy.input_ids'] = ids.clone()
        out['greedy.attention_mask'] = mask.clone()
        out['greedy.tokens'] = toks
        out['greedy.margin'] = margin
        return out

    def write_files(self, folder):
        write_tokenizer(folder, LLAMA_TOKENIZER, LLM_SPECIALS,
                        OrderedDict(llm_tokenizer_config(True), chat_template=LLAVA_CHAT_TEMPLATE))
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        write_json(os.path.join(folder, 'processor_config.json'), OrderedDict([
            ('image_token', '<image>'),
            ('num_additional_image_tokens', 1),
            ('patch_size', 8),
            ('processor_class', 'LlavaProcessor'),
            ('vision_feature_select_strategy', 'default'),
        ]))
        if self.new_layout:
            with open(os.path.join(folder, 'chat_template.jinja'), 'w') as f:
                f.write(LLAVA_CHAT_TEMPLATE)
        else:
            write_json(os.path.join(folder, 'chat_template.json'), {'chat_template': LLAVA_CHAT_TEMPLATE})
        generation_config(folder, 1, 2, 0, self.version)
        save_png(folder)


LLAVA_COMMON_NOTE = (
    'CLIP vision tower (quick_gelu, class embedding, pre_layrnorm): the feature is hidden_states[vision_feature_layer] '
    'of CLIPVisionModel, where hidden_states[0] = pre_layrnorm(embeddings) and hidden_states[i] = output of encoder '
    'layer i (no post_layernorm); output.vision_hidden_states.<k> are those hidden_states[k] for the k the feature '
    'needs. vision_feature_select_strategy "default" drops the CLS row, leaving 16 patch rows; projector linear_1 -> '
    'gelu -> linear_2 = output.image_features [B, 16, d_text]. input_ids already hold the 16 expanded <image> '
    'tokens (id 4 = image_token_index), as LlavaProcessor writes them (patch_size 8, num_additional_image_tokens 1); '
    'their embeddings are replaced, in order, by the image feature rows (masked_scatter). The prompt is the '
    'llava-1.5 chat template: "USER: <image>\\n{question} ASSISTANT:", tokenised with <s> first; row 1 is '
    'left-padded. output.logits is the plain forward (no position_ids -> 0..T-1 in each row, which for RoPE gives '
    'the same real-token logits as counting from the first real token); padded query positions are zeroed. '
    'greedy.*: full re-forward per step with the same pixel_values, position_ids cumsum(mask) - 1 (padded places 1), '
    'no stopping, greedy.tokens = new tokens only. ' + PNG_NOTE)


class Llava(_Llava):
    name = 'llava'
    stored_dtype = 'bfloat16'
    base_seed = 1400
    version = LEGACY_VERSION
    feature_layer = -2
    notes = ('LlavaForConditionalGeneration stored in bfloat16 (outputs computed in float64 from the stored '
             'values), CLASSIC layout (transformers < 4.52): vision_tower.vision_model.*, '
             'multi_modal_projector.linear_1/linear_2, language_model.model.*, language_model.lm_head.weight. '
             'vision_feature_layer -2: with 2 vision layers the feature is the output of layer 0 '
             '(hidden_states[1]); vision layer 1 and post_layernorm are in the file but reach no output. '
             'config.json has no multimodal_projector_bias (as configs of that era; the default, true, applies). '
             'chat_template in tokenizer_config.json and chat_template.json. ' + LLAVA_COMMON_NOTE)


class LlavaNew(_Llava):
    name = 'llava_new'
    stored_dtype = 'float32'
    base_seed = 1500
    version = TF_VERSION
    feature_layer = -1
    new_layout = True
    notes = ('The same LlavaForConditionalGeneration in the CURRENT layout (transformers >= 4.52), float32: '
             'model.vision_tower.vision_model.*, model.multi_modal_projector.*, model.language_model.* (a LlamaModel: '
             'embed_tokens, layers, norm) and lm_head.weight. vision_feature_layer -1: the output of the last '
             'vision layer (hidden_states[2]), still without post_layernorm (in the file, reaches no output). '
             'chat_template in tokenizer_config.json and chat_template.jinja. ' + LLAVA_COMMON_NOTE)


CASES = [Blip2, InstructBlip, Llava, LlavaNew]
