"""Cases clip, clip_vision, clip_text, siglip, siglip_vision, bert."""

import os
from collections import OrderedDict

import torch

from . import towers as T
from .common import (
    Tokenizer, clip_image_processor, clip_preprocessor_config, fixed_size_image_processor, fixture_picture,
    image_batch, layer_norm, linear, pad_batch, padding_mask, siglip_preprocessor_config, template, write_json,
    write_tokenizer, act, attention, merge_heads, split_heads,
)
from .runner import Case

IMAGE = 32
PNG_NOTE = ('input.pixel_values row 0 is output.pixel_values_from_png: CASE.image.png (48x40 RGB) through the slow '
            '(PIL) image processor of preprocessor_config.json; the other rows are N(0,1) pixels.')


def save_png(folder):
    out_dir = os.path.dirname(folder)
    fixture_picture().save(os.path.join(out_dir, os.path.basename(folder) + '.image.png'))


# ----------------------------------------------------------------------------------------------------------------
# CLIP
# ----------------------------------------------------------------------------------------------------------------

CLIP_TOKENIZER = Tokenizer(extra_added=[(316, '<|endoftext|>'), (317, '<|startoftext|>')],
                           post=template([('<|startoftext|>', 317)], [('<|endoftext|>', 316)]))
CLIP_SPECIALS = OrderedDict(bos_token='<|startoftext|>', eos_token='<|endoftext|>', pad_token='<|endoftext|>',
                            unk_token='<unk>')
CLIP_TEXTS = ['a photo of a red circle', 'a blue square', 'a picture of two small green stars']
CLIP_POOL_NOTE = ('CLIP text pooling: text_config.eos_token_id is 316 (<|endoftext|>, an added token), not 2, so '
                  'CLIPTextTransformer takes the FIRST position whose id equals eos_token_id (the post-PR-24773 '
                  'rule); the legacy argmax(input_ids) rule (eos_token_id == 2, or ids whose max is 49407) would '
                  'pick the <|startoftext|> position instead, because <|startoftext|> is 317 > 316. Texts are '
                  'right-padded with <|endoftext|> (as openai/clip pads), attention_mask marks the padding, the '
                  'text encoder is causal.')


def clip_tokenizer_config():
    return OrderedDict(add_bos_token=True, add_eos_token=True, model_max_length=16, padding_side='right',
                       do_lower_case=True, extra_special_tokens={})


def clip_text_inputs():
    ids, mask = pad_batch([CLIP_TOKENIZER.encode(t) for t in CLIP_TEXTS], 316, 'right')
    return ids, mask


def normed(x):
    return x / x.pow(2).sum(-1, keepdim=True).pow(0.5)


class Clip(Case):
    name = 'clip'
    cls = 'CLIPModel'
    architecture = 'clip'
    stored_dtype = 'float32'
    base_seed = 600
    notes = ('CLIPModel in float32: vision tower (class embedding, pre_layrnorm, quick_gelu, pooled = '
             'post_layernorm(CLS)), text tower, visual_projection / text_projection (no bias), logit_scale '
             '(scalar, used as exp). image_embeds / text_embeds are the L2-normalised projections as CLIPOutput '
             'returns them; logits_per_image = exp(logit_scale) * image_embeds @ text_embeds.T; probs = softmax '
             'over the 3 texts. ' + CLIP_POOL_NOTE + ' ' + PNG_NOTE)

    def build(self, P):
        v = T.clip_vision_config()
        t = T.clip_text_config()
        self.config = OrderedDict([
            ('architectures', ['CLIPModel']),
            ('initializer_factor', 1.0),
            ('logit_scale_init_value', 2.6592),
            ('model_type', 'clip'),
            ('projection_dim', 24),
            ('text_config', t),
            ('torch_dtype', 'float32'),
            ('transformers_version', None),
            ('vision_config', v),
        ])
        P.value('logit_scale', torch.tensor(2.3))  # CLIPModel's own parameter comes before its submodules
        T.build_clip_text(P, 'text_model.', t)
        T.build_clip_vision(P, 'vision_model.', v)
        P.linear('visual_projection', v['hidden_size'], 24, bias=False)
        P.linear('text_projection', t['hidden_size'], 24, bias=False)
        self.pre = clip_preprocessor_config(IMAGE, 'CLIPProcessor')

    def inputs(self, gen):
        self.png = clip_image_processor(fixture_picture(), self.pre)
        ids, mask = clip_text_inputs()
        return OrderedDict(input_ids=ids, attention_mask=mask, pixel_values=image_batch(gen, self.png, IMAGE))

    def compute(self, P, dtype):
        c = self.config
        vis = T.clip_vision_forward(P, 'vision_model.', c['vision_config'], self.inp['pixel_values'], dtype)
        txt = T.clip_text_forward(P, 'text_model.', c['text_config'], self.inp['input_ids'],
                                  self.inp['attention_mask'], dtype)
        img = normed(linear(P, 'visual_projection', vis['pooler_output'], dtype, bias=False))
        tx = normed(linear(P, 'text_projection', txt['pooler_output'], dtype, bias=False))
        per_text = (tx @ img.T) * P('logit_scale', dtype).exp()
        per_image = per_text.T
        return OrderedDict([
            ('output.image_embeds', img),
            ('output.text_embeds', tx),
            ('output.logits_per_image', per_image),
            ('output.logits_per_text', per_text),
            ('output.probs', per_image.softmax(dim=1)),
            ('output.vision_model_output.last_hidden_state', vis['last_hidden_state']),
            ('output.vision_model_output.pooler_output', vis['pooler_output']),
            ('output.text_model_output.last_hidden_state', txt['last_hidden_state']),
            ('output.text_model_output.pooler_output', txt['pooler_output']),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, CLIP_TOKENIZER, CLIP_SPECIALS, clip_tokenizer_config())
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        save_png(folder)


class ClipVision(Case):
    name = 'clip_vision'
    cls = 'CLIPVisionModelWithProjection'
    architecture = 'clip_vision_model'
    stored_dtype = 'float16'
    base_seed = 700
    notes = ('CLIPVisionModelWithProjection stored in float16 (outputs computed in float64 from the stored f16 '
             'values): vision_model.* + visual_projection.weight; image_embeds = visual_projection(post_layernorm('
             'CLS)) NOT normalised (only CLIPModel normalises); last_hidden_state is the encoder output (no '
             'post_layernorm on the sequence); quick_gelu. ' + PNG_NOTE)

    def build(self, P):
        self.config = T.clip_vision_config()
        self.config.update(architectures=['CLIPVisionModelWithProjection'], torch_dtype='float16',
                           transformers_version=None)
        self.config = OrderedDict(sorted(self.config.items()))
        T.build_clip_vision(P, 'vision_model.', self.config)
        P.linear('visual_projection', self.config['hidden_size'], self.config['projection_dim'], bias=False)
        self.pre = clip_preprocessor_config(IMAGE, None)
        del self.pre['processor_class']

    def inputs(self, gen):
        self.png = clip_image_processor(fixture_picture(), self.pre)
        return OrderedDict(pixel_values=image_batch(gen, self.png, IMAGE))

    def compute(self, P, dtype):
        vis = T.clip_vision_forward(P, 'vision_model.', self.config, self.inp['pixel_values'], dtype)
        return OrderedDict([
            ('output.image_embeds', linear(P, 'visual_projection', vis['pooler_output'], dtype, bias=False)),
            ('output.last_hidden_state', vis['last_hidden_state']),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
        ])

    def write_files(self, folder):
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        save_png(folder)


class ClipText(Case):
    name = 'clip_text'
    cls = 'CLIPTextModelWithProjection'
    architecture = 'clip_text_model'
    stored_dtype = 'bfloat16'
    base_seed = 800
    notes = ('CLIPTextModelWithProjection stored in bfloat16 (outputs computed in float64 from the stored values): '
             'text_model.* + text_projection.weight; text_embeds = text_projection(pooled) NOT normalised; '
             'hidden_act "gelu" (exact erf GELU, as the LAION ViT-H/bigG text towers use) instead of quick_gelu. '
             + CLIP_POOL_NOTE)

    def build(self, P):
        self.config = T.clip_text_config(hidden_act='gelu')
        self.config.update(architectures=['CLIPTextModelWithProjection'], torch_dtype='bfloat16',
                           transformers_version=None)
        self.config = OrderedDict(sorted(self.config.items()))
        T.build_clip_text(P, 'text_model.', self.config)
        P.linear('text_projection', self.config['hidden_size'], self.config['projection_dim'], bias=False)

    def inputs(self, gen):
        ids, mask = clip_text_inputs()
        return OrderedDict(input_ids=ids, attention_mask=mask)

    def compute(self, P, dtype):
        txt = T.clip_text_forward(P, 'text_model.', self.config, self.inp['input_ids'], self.inp['attention_mask'],
                                  dtype)
        return OrderedDict([
            ('output.text_embeds', linear(P, 'text_projection', txt['pooler_output'], dtype, bias=False)),
            ('output.last_hidden_state', txt['last_hidden_state']),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, CLIP_TOKENIZER, CLIP_SPECIALS, clip_tokenizer_config())


# ----------------------------------------------------------------------------------------------------------------
# SigLIP
# ----------------------------------------------------------------------------------------------------------------

SIGLIP_TOKENIZER = Tokenizer(post=template([], [('</s>', 2)]))
SIGLIP_SPECIALS = OrderedDict(eos_token='</s>', pad_token='</s>', unk_token='<unk>')
SIGLIP_LENGTH = 16


class Siglip(Case):
    name = 'siglip'
    cls = 'SiglipModel'
    architecture = 'siglip'
    stored_dtype = 'float32'
    base_seed = 900
    notes = ('SiglipModel in float32. Vision: patch conv with bias, no class token, post_layernorm on the sequence, '
             'pooled by the MAP head (probe attends over the sequence through torch.nn.MultiheadAttention with '
             'packed in_proj_weight/in_proj_bias rows q|k|v, then residual + mlp(layernorm(.)), row 0). Text: '
             'bidirectional encoder (no causal mask), final_layer_norm, pooled = head(last position) - the texts '
             'are padded to max_length 16 with </s> as SigLIP is used, and (as the SigLIP processor) no '
             'attention_mask is given. gelu_pytorch_tanh. image_embeds / text_embeds L2-normalised; '
             'logits_per_text = text @ image.T * exp(logit_scale) + logit_bias; probs = sigmoid(logits_per_image). '
             + PNG_NOTE)

    def build(self, P):
        v = T.siglip_vision_config()
        t = T.siglip_text_config()
        self.config = OrderedDict([
            ('architectures', ['SiglipModel']),
            ('initializer_factor', 1.0),
            ('model_type', 'siglip'),
            ('text_config', t),
            ('torch_dtype', 'float32'),
            ('transformers_version', None),
            ('vision_config', v),
        ])
        P.value('logit_scale', torch.tensor([2.3]))
        P.value('logit_bias', torch.tensor([1.0]))
        T.build_siglip_text(P, 'text_model.', t)
        T.build_siglip_vision(P, 'vision_model.', v)
        self.pre = siglip_preprocessor_config(IMAGE, 'SiglipProcessor')

    def inputs(self, gen):
        self.png = fixed_size_image_processor(fixture_picture(), self.pre)
        rows = [SIGLIP_TOKENIZER.encode(t) for t in CLIP_TEXTS]
        ids = torch.tensor([r + [2] * (SIGLIP_LENGTH - len(r)) for r in rows], dtype=torch.int64)
        return OrderedDict(input_ids=ids, pixel_values=image_batch(gen, self.png, IMAGE))

    def compute(self, P, dtype):
        c = self.config
        vis = T.siglip_vision_forward(P, 'vision_model.', c['vision_config'], self.inp['pixel_values'], dtype)
        txt = T.siglip_text_forward(P, 'text_model.', c['text_config'], self.inp['input_ids'], None, dtype)
        img = normed(vis['pooler_output'])
        tx = normed(txt['pooler_output'])
        per_text = (tx @ img.T) * P('logit_scale', dtype).exp() + P('logit_bias', dtype)
        per_image = per_text.T
        return OrderedDict([
            ('output.image_embeds', img),
            ('output.text_embeds', tx),
            ('output.logits_per_image', per_image),
            ('output.logits_per_text', per_text),
            ('output.probs', torch.sigmoid(per_image)),
            ('output.vision_model_output.last_hidden_state', vis['last_hidden_state']),
            ('output.vision_model_output.pooler_output', vis['pooler_output']),
            ('output.text_model_output.last_hidden_state', txt['last_hidden_state']),
            ('output.text_model_output.pooler_output', txt['pooler_output']),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, SIGLIP_TOKENIZER, SIGLIP_SPECIALS,
                        OrderedDict(add_bos_token=False, add_eos_token=True, model_max_length=SIGLIP_LENGTH,
                                    padding_side='right', do_lower_case=True, extra_special_tokens={}))
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        save_png(folder)


class SiglipVision(Case):
    name = 'siglip_vision'
    cls = 'SiglipVisionModel'
    architecture = 'siglip_vision_model'
    stored_dtype = 'bfloat16'
    base_seed = 1000
    notes = ('SiglipVisionModel stored in bfloat16 (outputs computed in float64 from the stored values): '
             'vision_model.*; last_hidden_state = post_layernorm(encoder output); pooler_output = the MAP '
             'attention-pooling head (vision_model.head.*). ' + PNG_NOTE)

    def build(self, P):
        self.config = T.siglip_vision_config()
        self.config.update(architectures=['SiglipVisionModel'], torch_dtype='bfloat16', transformers_version=None)
        self.config = OrderedDict(sorted(self.config.items()))
        T.build_siglip_vision(P, 'vision_model.', self.config)
        self.pre = siglip_preprocessor_config(IMAGE, None)
        del self.pre['processor_class']

    def inputs(self, gen):
        self.png = fixed_size_image_processor(fixture_picture(), self.pre)
        return OrderedDict(pixel_values=image_batch(gen, self.png, IMAGE))

    def compute(self, P, dtype):
        vis = T.siglip_vision_forward(P, 'vision_model.', self.config, self.inp['pixel_values'], dtype)
        return OrderedDict([
            ('output.last_hidden_state', vis['last_hidden_state']),
            ('output.pooler_output', vis['pooler_output']),
            ('output.pixel_values_from_png', torch.from_numpy(self.png.copy())[None].to(dtype)),
        ])

    def write_files(self, folder):
        write_json(os.path.join(folder, 'preprocessor_config.json'), self.pre)
        save_png(folder)


# ----------------------------------------------------------------------------------------------------------------
# BERT
# ----------------------------------------------------------------------------------------------------------------

BERT_TOKENIZER = Tokenizer(post=template([('[CLS]', 9)], [('[SEP]', 10)]))
BERT_SPECIALS = OrderedDict(cls_token='[CLS]', mask_token='[MASK]', pad_token='<pad>', sep_token='[SEP]',
                            unk_token='<unk>')
BERT_TEXTS = ['the red circle is above the blue square .', 'where is the star ?']


def bert_config():
    return OrderedDict([
        ('architectures', ['BertModel']),
        ('attention_probs_dropout_prob', 0.1),
        ('classifier_dropout', None),
        ('hidden_act', 'gelu'),
        ('hidden_dropout_prob', 0.1),
        ('hidden_size', 32),
        ('initializer_range', 0.02),
        ('intermediate_size', 64),
        ('layer_norm_eps', 1e-12),
        ('max_position_embeddings', 32),
        ('model_type', 'bert'),
        ('num_attention_heads', 4),
        ('num_hidden_layers', 2),
        ('pad_token_id', 0),
        ('position_embedding_type', 'absolute'),
        ('torch_dtype', 'float32'),
        ('transformers_version', None),
        ('type_vocab_size', 2),
        ('use_cache', True),
        ('vocab_size', 316),
    ])


class Bert(Case):
    name = 'bert'
    cls = 'BertModel'
    architecture = 'bert'
    stored_dtype = 'float32'
    base_seed = 1100
    notes = ('BertModel in float32 (BertModel.save_pretrained names: embeddings.*, encoder.layer.N.*, pooler.*, no '
             '"bert." prefix). Post-LN: LayerNorm(x + sublayer(x)) with eps 1e-12; absolute learned positions '
             '0..T-1; token_type_ids all zeros (input.token_type_ids); bidirectional attention with the padding '
             'mask (row 1 right-padded; its padded positions are real outputs of BertModel and are kept); '
             'pooler_output = tanh(pooler.dense(last_hidden_state[:, 0])). The tokenizer wraps texts in '
             '[CLS] ... [SEP].')

    def build(self, P):
        self.config = bert_config()
        c = self.config
        d, ff = c['hidden_size'], c['intermediate_size']
        P.embedding('embeddings.word_embeddings.weight', c['vocab_size'], d, std=0.5)
        P.embedding('embeddings.position_embeddings.weight', c['max_position_embeddings'], d, std=0.3)
        P.embedding('embeddings.token_type_embeddings.weight', c['type_vocab_size'], d, std=0.3)
        P.layer_norm('embeddings.LayerNorm', d)
        for i in range(c['num_hidden_layers']):
            p = f'encoder.layer.{i}.'
            for n in ('query', 'key', 'value'):
                P.linear(p + 'attention.self.' + n, d, d)
            P.linear(p + 'attention.output.dense', d, d)
            P.layer_norm(p + 'attention.output.LayerNorm', d)
            P.linear(p + 'intermediate.dense', d, ff)
            P.linear(p + 'output.dense', ff, d)
            P.layer_norm(p + 'output.LayerNorm', d)
        P.linear('pooler.dense', d, d)

    def inputs(self, gen):
        ids, mask = pad_batch([BERT_TOKENIZER.encode(t) for t in BERT_TEXTS], 0, 'right')
        return OrderedDict(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))

    def compute(self, P, dtype):
        c = self.config
        eps, nh = c['layer_norm_eps'], c['num_attention_heads']
        ids, mask, tt = self.inp['input_ids'], self.inp['attention_mask'], self.inp['token_type_ids']
        t = ids.shape[1]
        h = P('embeddings.word_embeddings.weight', dtype)[ids] + \
            P('embeddings.position_embeddings.weight', dtype)[:t][None] + \
            P('embeddings.token_type_embeddings.weight', dtype)[tt]
        h = layer_norm(P, 'embeddings.LayerNorm', h, eps, dtype)
        m = padding_mask(mask, dtype)
        hd = c['hidden_size'] // nh
        for i in range(c['num_hidden_layers']):
            p = f'encoder.layer.{i}.'
            q = split_heads(linear(P, p + 'attention.self.query', h, dtype), nh)
            k = split_heads(linear(P, p + 'attention.self.key', h, dtype), nh)
            v = split_heads(linear(P, p + 'attention.self.value', h, dtype), nh)
            a = merge_heads(attention(q, k, v, hd ** -0.5, m))
            h = layer_norm(P, p + 'attention.output.LayerNorm', linear(P, p + 'attention.output.dense', a, dtype) + h,
                           eps, dtype)
            x = act(c['hidden_act'], linear(P, p + 'intermediate.dense', h, dtype))
            h = layer_norm(P, p + 'output.LayerNorm', linear(P, p + 'output.dense', x, dtype) + h, eps, dtype)
        pooled = torch.tanh(linear(P, 'pooler.dense', h[:, 0], dtype))
        return OrderedDict([('output.last_hidden_state', h), ('output.pooler_output', pooled)])

    def write_files(self, folder):
        write_tokenizer(folder, BERT_TOKENIZER, BERT_SPECIALS,
                        OrderedDict(do_lower_case=True, model_max_length=32, padding_side='right',
                                    strip_accents=None, tokenize_chinese_chars=True, extra_special_tokens={}))


CASES = [Clip, ClipVision, ClipText, Siglip, SiglipVision, Bert]
