"""Cases llama, mistral, qwen2, opt, gpt2."""

from collections import OrderedDict

import torch

from . import decoders as D
from .common import Tokenizer, generate_position_ids, generation_config, greedy, pad_batch, template, \
    write_tokenizer, zero_padded
from .runner import Case

PROMPTS = ['the red circle is on the left of the blue square and', 'a small green star is']

FORWARD_NOTE = ('output.logits is the plain forward model(input_ids, attention_mask) with no position_ids, so '
                'positions are what that forward derives (input.position_ids holds them). Logits at padded '
                '(attention_mask 0) query positions are masked garbage in every implementation and are zeroed here. '
                'greedy.*: argmax continuation by full re-forward every step (no KV cache), stopping rules off '
                '(eos does not stop it), attention mask extended with 1 per step and position_ids as '
                'GenerationMixin passes them: cumsum(mask) - 1 with padded places set to 1; greedy.margin is '
                'top1 - top2 of the logits that chose each token.')

# Tied input/output embeddings make an untrained model echo its last input token (h . E[last] dominates);
# a smaller embedding scale lets the layers, not the echo, pick the next token.
TIED_EMB_STD = 0.1

LLM_SPECIALS = OrderedDict(bos_token='<s>', eos_token='</s>', pad_token='<pad>', unk_token='<unk>')


def llm_tokenizer_config(add_bos, add_eos=False):
    return OrderedDict(add_bos_token=add_bos, add_eos_token=add_eos, model_max_length=64, padding_side='left',
                       extra_special_tokens={})


class _CausalLM(Case):
    has_greedy = True
    tokenizer = None          # Tokenizer
    specials = LLM_SPECIALS
    add_bos = True
    rope = True

    def inputs(self, gen):
        rows = [self.tokenizer.encode(p) for p in PROMPTS]
        ids, mask = pad_batch(rows, 0, 'left')
        return OrderedDict(input_ids=ids, attention_mask=mask, position_ids=self.forward_positions(mask))

    def forward_positions(self, mask):
        return D.causal_lm_position_ids(mask)

    def logits(self, P, dtype, ids, mask, pos):
        raise NotImplementedError

    def compute(self, P, dtype):
        ids, mask, pos = self.inp['input_ids'], self.inp['attention_mask'], self.inp['position_ids']
        logits = self.logits(P, dtype, ids, mask, pos)
        if self.rope and dtype == torch.float64:
            # RoPE only sees position differences: counting from the first real token gives the same real-token
            # logits as the plain forward's 0..T-1 (so consumers may use either convention for these models).
            other = self.logits(P, dtype, ids, mask, generate_position_ids(mask))
            real = mask.bool()
            assert torch.allclose(other[real], logits[real], rtol=0, atol=1e-9 * float(logits.abs().max())), self.name
        toks, margin = greedy(lambda i, m: self.logits(P, dtype, i, m, generate_position_ids(m)), ids, mask)
        return OrderedDict([
            ('output.logits', zero_padded(logits, mask)),
            ('greedy.input_ids', ids.clone()),
            ('greedy.attention_mask', mask.clone()),
            ('greedy.tokens', toks),
            ('greedy.margin', margin),
        ])

    def write_files(self, folder):
        write_tokenizer(folder, self.tokenizer, self.specials, llm_tokenizer_config(self.add_bos))
        c = self.config
        pad = self.tokenizer.vocab[self.specials['pad_token']]
        generation_config(folder, c.get('bos_token_id'), c['eos_token_id'], pad)


class Llama(_CausalLM):
    name = 'llama'
    cls = 'LlamaForCausalLM'
    architecture = 'llama'
    stored_dtype = 'bfloat16'
    shards = 2
    base_seed = 100
    tokenizer = Tokenizer()
    notes = ('LlamaForCausalLM stored in bfloat16 (expected outputs computed in float64 from the stored bf16 '
             'values, upcast), sharded in 2 files + model.safetensors.index.json; GQA 4 query heads / 2 kv heads, '
             'head_dim 16, untied lm_head, rope_theta 10000 (default rope), rms_norm_eps 1e-5. Tokenizer prepends '
             '<s>. ' + FORWARD_NOTE)

    def build(self, P):
        self.config = D.llama_config()
        D.build_llama(P, self.config)

    def logits(self, P, dtype, ids, mask, pos):
        emb = D.llama_embed(P, self.config, dtype, ids)
        return D.llama_forward(P, self.config, dtype, emb, mask, pos)[0]


class Mistral(_CausalLM):
    name = 'mistral'
    cls = 'MistralForCausalLM'
    architecture = 'mistral'
    stored_dtype = 'float32'
    base_seed = 200
    tokenizer = Tokenizer()
    notes = ('MistralForCausalLM in float32; 4 query heads sharing 1 kv head (multi-query GQA), head_dim 16, '
             'sliding_window null (full causal attention), untied lm_head. Tokenizer prepends <s>. ' + FORWARD_NOTE)

    def build(self, P):
        self.config = D.mistral_config()
        D.build_llama(P, self.config)

    def logits(self, P, dtype, ids, mask, pos):
        emb = D.llama_embed(P, self.config, dtype, ids)
        return D.llama_forward(P, self.config, dtype, emb, mask, pos)[0]


class Qwen2(_CausalLM):
    name = 'qwen2'
    cls = 'Qwen2ForCausalLM'
    architecture = 'qwen2'
    stored_dtype = 'float32'
    base_seed = 300
    tokenizer = Tokenizer(drop_post=True)
    specials = OrderedDict(bos_token=None, eos_token='</s>', pad_token='<pad>', unk_token='<unk>')
    add_bos = False
    notes = ('Qwen2ForCausalLM in float32: q/k/v projections with bias, o_proj without, rope_theta 1e6, '
             'rms_norm_eps 1e-6, tie_word_embeddings true so the file has no lm_head.weight (logits use '
             'model.embed_tokens.weight), vocab_size 320 > the tokenizer\'s 316 (rows 316..319 are padding rows '
             'the tokenizer never emits, but greedy may pick them). The tokenizer adds no BOS (as Qwen2\'s). '
             + FORWARD_NOTE)

    def build(self, P):
        self.config = D.qwen2_config()
        D.build_llama(P, self.config, qkv_bias=True, emb_std=TIED_EMB_STD)

    def logits(self, P, dtype, ids, mask, pos):
        emb = D.llama_embed(P, self.config, dtype, ids)
        return D.llama_forward(P, self.config, dtype, emb, mask, pos, qkv_bias=True)[0]


class Opt(_CausalLM):
    name = 'opt'
    cls = 'OPTForCausalLM'
    architecture = 'opt'
    stored_dtype = 'float16'
    base_seed = 400
    rope = False
    tokenizer = Tokenizer(post=template([('</s>', 2)], []))
    specials = OrderedDict(bos_token='</s>', eos_token='</s>', pad_token='<pad>', unk_token='<unk>')
    notes = ('OPTForCausalLM stored in float16 (outputs computed in float64 from the stored values): '
             'model.decoder.*, learned positions embed_positions [max_position_embeddings + 2, d] indexed by '
             'position + 2, do_layer_norm_before true (pre-LN), relu, q scaled by head_dim^-0.5 before q.k, '
             'lm_head tied to model.decoder.embed_tokens and left out of the file. The tokenizer prepends </s> '
             '(id 2) as OPT\'s does. Without position_ids OPT numbers positions itself from the mask: '
             'cumsum(mask) * mask - 1 (padded places -1, i.e. row 1 of embed_positions), which is what '
             'input.position_ids holds and what output.logits used; the greedy rule gives the same numbers at '
             'real tokens. ' + FORWARD_NOTE)

    def build(self, P):
        self.config = D.opt_config()
        D.build_opt(P, self.config, emb_std=TIED_EMB_STD)

    def forward_positions(self, mask):
        return D.opt_position_ids(mask)

    def logits(self, P, dtype, ids, mask, pos):
        emb = D.opt_embed(P, dtype, ids)
        return D.opt_forward(P, self.config, dtype, emb, mask, pos)[0]


class Gpt2(_CausalLM):
    name = 'gpt2'
    cls = 'GPT2LMHeadModel'
    architecture = 'gpt2'
    stored_dtype = 'float32'
    base_seed = 500
    rope = False
    version = '4.26.1'
    tokenizer = Tokenizer(drop_post=True)
    specials = OrderedDict(bos_token='</s>', eos_token='</s>', pad_token='<pad>', unk_token='<unk>')
    add_bos = False
    notes = ('GPT2LMHeadModel in float32 as an older save_pretrained wrote it: names under transformer., Conv1D '
             'weights stored [in, out] (x @ W + b; c_attn packs q|k|v along the output axis), lm_head tied to '
             'transformer.wte and left out, and the legacy persistent buffers transformer.h.N.attn.bias '
             '(uint8 [1,1,n_positions,n_positions] lower-triangular ones, safetensors dtype U8) and '
             'transformer.h.N.attn.masked_bias (float32 scalar -1e4) present; current transformers ignores both '
             'when loading. gelu_new, layer_norm_epsilon 1e-5, attention scaled by 1/sqrt(head_dim). The '
             'tokenizer adds no BOS (as '
             'GPT-2\'s). Padding: GPT-2 has no pad token; this folder declares <pad> for batching. '
             'NOTE: GPT-2 has absolute learned positions, so for the left-padded row 1 the plain forward '
             '(positions 0.. counted from the first, padding, column) and generation (positions counted from the '
             'first real token) genuinely differ; output.logits follows the plain forward. ' + FORWARD_NOTE)

    def build(self, P):
        self.config = D.gpt2_config()
        D.build_gpt2(P, self.config, emb_std=TIED_EMB_STD)

    def logits(self, P, dtype, ids, mask, pos):
        return D.gpt2_forward(P, self.config, dtype, ids, mask, pos)[0]


CASES = [Llama, Mistral, Qwen2, Opt, Gpt2]
