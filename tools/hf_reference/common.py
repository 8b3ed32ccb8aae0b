"""Shared pieces of the transformers reference: safetensors I/O, the `save_pretrained` folder layout, the fixture
tokenizer, the slow (PIL) image processors, the parameter store and the numeric building blocks.

Everything here is written from transformers' own sources (read, not copied); see tools/hf_reference.py.
"""

import copy
import json
import math
import os
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
TESTDATA = os.path.join(REPO, 'electron', 'formats', 'hf', 'testdata')
BASE_TOKENIZER = os.path.join(REPO, 'models', 'tokenizer.json')

# The transformers_version written into configs. Folders in the layout current transformers saves claim a 4.5x
# release (the last line that writes `torch_dtype`); the legacy layouts claim a release of their own era.
TF_VERSION = '4.57.1'

GREEDY_STEPS = 12
MIN_DISTINCT = 4
MIN_MARGIN = 1e-3
# The seed search asks a little more than the asserted minimum, so the chosen fixtures are not borderline.
SEARCH_DISTINCT = 5
SEARCH_MARGIN = 3e-3

# ----------------------------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------------------------

_CODES = {
    torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.int64: 'I64', torch.bool: 'BOOL',
    torch.float64: 'F64', torch.int32: 'I32', torch.uint8: 'U8',
}
_NP = {'F32': np.float32, 'F16': np.float16, 'I64': np.int64, 'F64': np.float64, 'I32': np.int32, 'BOOL': np.bool_,
       'U8': np.uint8}
_SIZE = {'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'BOOL': 1, 'F64': 8, 'I32': 4, 'U8': 1}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: name -> torch tensor (written in sorted-name order); metadata: str -> str (written as __metadata__)."""
    header = OrderedDict()
    header['__metadata__'] = OrderedDict((k, str(v)) for k, v in metadata.items())
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _CODES:
            raise ValueError(f'{name}: dtype {t.dtype} not written')
        blob = tensor_bytes(t)
        header[name] = OrderedDict(dtype=_CODES[t.dtype], shape=list(t.shape),
                                   data_offsets=[offset, offset + len(blob)])
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)  # safetensors pads the header with spaces to an 8-byte boundary
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return offset


def read_safetensors(path):
    """Returns (OrderedDict name -> torch tensor in the stored dtype, metadata dict)."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n].decode())
    base = 8 + n
    meta = header.pop('__metadata__', {})
    out = OrderedDict()
    for name, info in header.items():
        a, b = info['data_offsets']
        raw = data[base + a:base + b]
        code = info['dtype']
        if len(raw) != _SIZE[code] * int(np.prod(info['shape'], dtype=np.int64)):
            raise ValueError(f'{path}: {name} has {len(raw)} bytes for shape {info["shape"]} {code}')
        if code == 'BF16':
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_NP[code]).copy())
        out[name] = t.reshape(info['shape'])
    return out, meta


# ----------------------------------------------------------------------------------------------------------------
# Parameters: a module-ordered store of the STORED tensors, read back upcast, with a record of what was read.
# ----------------------------------------------------------------------------------------------------------------

TORCH_DTYPE = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


class Params:
    def __init__(self, seed, stored_dtype):
        self.gen = torch.Generator().manual_seed(seed)
        self.stored_dtype = stored_dtype
        self.tensors = OrderedDict()   # name -> tensor in the stored dtype (or a buffer's own dtype)
        self.used = set()
        self.unused = {}               # name -> why the forward never reads it

    # --- creation -------------------------------------------------------------------------------------------
    def _store(self, name, value, keep_dtype=False):
        if name in self.tensors:
            raise KeyError(f'duplicate parameter {name}')
        self.tensors[name] = value if keep_dtype else value.to(TORCH_DTYPE[self.stored_dtype])
        return name

    def randn(self, shape, std):
        return torch.randn(shape, generator=self.gen, dtype=torch.float64) * std

    def linear(self, prefix, d_in, d_out, bias=True, gain=1.0):
        self._store(prefix + '.weight', self.randn((d_out, d_in), gain / math.sqrt(d_in)))
        if bias:
            self._store(prefix + '.bias', self.randn((d_out,), 0.1))

    def conv1d(self, prefix, d_in, d_out, gain=1.0):
        """GPT-2's Conv1D: weight [in, out], bias [out]."""
        self._store(prefix + '.weight', self.randn((d_in, d_out), gain / math.sqrt(d_in)))
        self._store(prefix + '.bias', self.randn((d_out,), 0.1))

    def layer_norm(self, prefix, d, bias=True):
        self._store(prefix + '.weight', 1 + self.randn((d,), 0.1))
        if bias:
            self._store(prefix + '.bias', self.randn((d,), 0.1))

    def embedding(self, name, n, d, std=1.0):
        self._store(name, self.randn((n, d), std))

    def param(self, name, shape, std):
        self._store(name, self.randn(shape, std))

    def value(self, name, tensor):
        self._store(name, tensor.to(torch.float64))

    def buffer(self, name, tensor, why):
        """A persisted buffer the forward does not read (legacy checkpoints)."""
        self._store(name, tensor, keep_dtype=True)
        self.unused[name] = why

    def mark_unused(self, name, why):
        assert name in self.tensors, name
        self.unused[name] = why

    def mark_unused_prefix(self, prefix, why):
        names = [n for n in self.tensors if n.startswith(prefix)]
        assert names, prefix
        for n in names:
            self.unused[n] = why

    # --- reading --------------------------------------------------------------------------------------------
    def __call__(self, name, dtype):
        if name not in self.tensors:
            raise KeyError(f'forward reads {name}, which the folder does not hold')
        self.used.add(name)
        return self.tensors[name].to(dtype)

    def has(self, name):
        return name in self.tensors

    def check_coverage(self, case):
        never = [n for n in self.tensors if n not in self.used and n not in self.unused]
        if never:
            raise AssertionError(f'{case}: stored but never read by the forward: {never}')
        wrongly = [n for n in self.unused if n in self.used]
        if wrongly:
            raise AssertionError(f'{case}: declared unused but read: {wrongly}')


# ----------------------------------------------------------------------------------------------------------------
# Numeric building blocks (transformers semantics)
# ----------------------------------------------------------------------------------------------------------------

def act(name, x):
    if name == 'gelu':
        return F.gelu(x)
    if name in ('gelu_new', 'gelu_pytorch_tanh'):
        # ACT2FN['gelu_new'] (NewGELUActivation) and ['gelu_pytorch_tanh'] are the same tanh approximation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == 'quick_gelu':
        return x * torch.sigmoid(1.702 * x)
    if name == 'relu':
        return F.relu(x)
    if name == 'silu':
        return F.silu(x)
    if name == 'tanh':
        return torch.tanh(x)
    raise ValueError(name)


def linear(P, prefix, x, dtype, bias=True):
    w = P(prefix + '.weight', dtype)
    b = P(prefix + '.bias', dtype) if bias else None
    return F.linear(x, w, b)


def layer_norm(P, prefix, x, eps, dtype):
    d = x.shape[-1]
    return F.layer_norm(x, (d,), P(prefix + '.weight', dtype), P(prefix + '.bias', dtype), eps)


def rms_norm(P, name, x, eps, dtype):
    variance = x.pow(2).mean(-1, keepdim=True)
    return P(name, dtype) * (x * torch.rsqrt(variance + eps))


def split_heads(x, n):
    b, t, d = x.shape
    return x.view(b, t, n, d // n).transpose(1, 2)


def merge_heads(x):
    b, n, t, h = x.shape
    return x.transpose(1, 2).reshape(b, t, n * h)


def attention(q, k, v, scale, mask=None):
    """q [B,H,T,D], k/v [B,H,S,D] (kv heads already repeated); mask additive, broadcastable to [B,H,T,S]."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


def repeat_kv(x, n_rep):
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def neg(dtype):
    return torch.finfo(dtype).min


def padding_mask(attention_mask, dtype):
    """[B,S] 1/0 -> additive [B,1,1,S] (0 where attended, dtype-min where masked), as _prepare_4d_attention_mask."""
    m = attention_mask.to(dtype)[:, None, None, :]
    return (1.0 - m) * neg(dtype)


def causal_mask(attention_mask, dtype):
    """[B,T] -> additive [B,1,T,T]: a query sees keys at or before it that the mask keeps."""
    b, t = attention_mask.shape
    allowed = torch.tril(torch.ones(t, t, dtype=torch.bool))[None, None] & attention_mask.bool()[:, None, None, :]
    out = torch.zeros(b, 1, t, t, dtype=dtype)
    return out.masked_fill(~allowed, neg(dtype))


def generate_position_ids(attention_mask):
    """What GenerationMixin.prepare_inputs_for_generation passes: cumsum(mask) - 1, padded places set to 1."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


def rope_cos_sin(position_ids, head_dim, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float64) / head_dim))
    freqs = position_ids.to(torch.float64)[..., None] * inv_freq  # [B,T,hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer (the WordLevel tokenizer of models/tokenizer.json, with per-architecture post-processors)
# ----------------------------------------------------------------------------------------------------------------

def load_base_tokenizer():
    with open(BASE_TOKENIZER) as f:
        return json.load(f)


def added_token(tid, content):
    return OrderedDict(id=tid, content=content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                       special=True)


def template(single_pre, single_post, pair=True):
    """A TemplateProcessing post-processor: special tokens (content, id) before / after $A."""
    def special(tok):
        return {'SpecialToken': {'id': tok[0], 'type_id': 0}}

    single = [special(t) for t in single_pre] + [{'Sequence': {'id': 'A', 'type_id': 0}}] + \
        [special(t) for t in single_post]
    pair_seq = [special(t) for t in single_pre] + [{'Sequence': {'id': 'A', 'type_id': 0}}] + \
        [special(t) for t in single_post] + [{'Sequence': {'id': 'B', 'type_id': 1}}] + \
        [{'SpecialToken': {'id': t[0], 'type_id': 1}} for t in single_post]
    specials = OrderedDict()
    for content, tid in list(single_pre) + list(single_post):
        specials[content] = {'id': content, 'ids': [tid], 'tokens': [content]}
    return OrderedDict(type='TemplateProcessing', single=single, pair=pair_seq, special_tokens=specials)


class Tokenizer:
    """tokenizer.json content + a Python encoder with the same behaviour for the plain texts used here:
    added tokens matched verbatim first, then Lowercase + BertPreTokenizer (whitespace and punctuation split) +
    WordLevel lookup, then the TemplateProcessing post-processor."""

    def __init__(self, extra_added=(), post=None, drop_post=False):
        self.json = load_base_tokenizer()
        for tid, content in extra_added:
            self.json['added_tokens'].append(added_token(tid, content))
            self.json['model']['vocab'][content] = tid
        if drop_post:
            self.json['post_processor'] = None
        elif post is not None:
            self.json['post_processor'] = post
        self.vocab = self.json['model']['vocab']
        self.added = sorted((t['content'] for t in self.json['added_tokens']), key=len, reverse=True)
        self.id_to_token = {v: k for k, v in self.vocab.items()}

    @property
    def size(self):
        return len(self.vocab)

    def _words(self, text):
        out = []
        word = ''
        for ch in text.lower():
            if ch.isspace():
                if word:
                    out.append(word)
                word = ''
            elif not ch.isalnum() and ch != '_':
                if word:
                    out.append(word)
                out.append(ch)
                word = ''
            else:
                word += ch
        if word:
            out.append(word)
        return out

    def encode(self, text, add_special_tokens=True):
        ids = []
        i = 0
        chunk = ''
        while i < len(text):
            hit = next((a for a in self.added if text.startswith(a, i)), None)
            if hit:
                ids += self._lookup(chunk)
                chunk = ''
                ids.append(self.vocab[hit])
                i += len(hit)
            else:
                chunk += text[i]
                i += 1
        ids += self._lookup(chunk)
        post = self.json.get('post_processor')
        if add_special_tokens and post:
            pre, after, seen = [], [], False
            for item in post['single']:
                if 'Sequence' in item:
                    seen = True
                else:
                    (after if seen else pre).append(self.vocab[item['SpecialToken']['id']])
            ids = pre + ids + after
        return ids

    def _lookup(self, chunk):
        out = []
        for w in self._words(chunk):
            if w not in self.vocab:
                raise KeyError(f'fixture text uses a word outside the vocabulary: {w!r}')
            out.append(self.vocab[w])
        return out

    def decode(self, ids):
        return ' '.join(self.id_to_token.get(int(i), f'<{int(i)}>') for i in ids)


def pad_batch(rows, pad_id, side):
    n = max(len(r) for r in rows)
    ids, mask = [], []
    for r in rows:
        p = n - len(r)
        if side == 'left':
            ids.append([pad_id] * p + r)
            mask.append([0] * p + [1] * len(r))
        else:
            ids.append(r + [pad_id] * p)
            mask.append([1] * len(r) + [0] * p)
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(mask, dtype=torch.int64)


def special_entry(content):
    return OrderedDict(content=content, lstrip=False, normalized=False, rstrip=False, single_word=False)


def write_tokenizer(folder, tok, specials, extra_config=None):
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json as PreTrainedTokenizerFast.save_pretrained
    writes them. specials: {'bos_token': '<s>' or None, 'eos_token': ..., 'pad_token': ..., 'unk_token': ..., ...}."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'tokenizer.json'), 'w') as f:
        json.dump(tok.json, f, indent=2, ensure_ascii=False)
        f.write('\n')
    cfg = OrderedDict()
    cfg['added_tokens_decoder'] = OrderedDict(
        (str(t['id']), OrderedDict(content=t['content'], lstrip=False, normalized=False, rstrip=False,
                                   single_word=False, special=True))
        for t in sorted(tok.json['added_tokens'], key=lambda t: t['id']))
    for k, v in (extra_config or {}).items():
        cfg[k] = v
    for k, v in specials.items():
        cfg[k] = v
    cfg['clean_up_tokenization_spaces'] = False
    cfg['tokenizer_class'] = 'PreTrainedTokenizerFast'
    cfg = OrderedDict(sorted(cfg.items()))
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write('\n')
    smap = OrderedDict((k, special_entry(v)) for k, v in sorted(specials.items()) if v is not None)
    with open(os.path.join(folder, 'special_tokens_map.json'), 'w') as f:
        json.dump(smap, f, indent=2)
        f.write('\n')


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write('\n')


def generation_config(folder, bos, eos, pad, version=TF_VERSION):
    cfg = OrderedDict()
    if bos is not None:
        cfg['bos_token_id'] = bos
    cfg['do_sample'] = False
    cfg['eos_token_id'] = eos
    cfg['max_new_tokens'] = GREEDY_STEPS
    cfg['pad_token_id'] = pad
    cfg['transformers_version'] = version
    write_json(os.path.join(folder, 'generation_config.json'), cfg)


# ----------------------------------------------------------------------------------------------------------------
# save_pretrained: model.safetensors or shards + index, tied weights already left out by the caller
# ----------------------------------------------------------------------------------------------------------------

def save_weights(folder, tensors, shards=1):
    """tensors: module-ordered name -> tensor. With shards > 1 the names are cut, in that order, into `shards`
    consecutive files of about equal byte size (as save_pretrained's max_shard_size split does) and
    model.safetensors.index.json maps every name to its file. Returns the list of files written."""
    os.makedirs(folder, exist_ok=True)
    meta = {'format': 'pt'}
    if shards == 1:
        write_safetensors(os.path.join(folder, 'model.safetensors'), tensors, meta)
        return ['model.safetensors']
    names = list(tensors)
    sizes = [len(tensor_bytes(tensors[n])) for n in names]
    total = sum(sizes)
    target = total / shards
    groups, cur, acc = [], [], 0
    for n, s in zip(names, sizes):
        if cur and acc + s > target * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
        cur.append(n)
        acc += s
    groups.append(cur)
    assert len(groups) == shards, (len(groups), shards)
    files = []
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f'model-{i + 1:05d}-of-{shards:05d}.safetensors'
        write_safetensors(os.path.join(folder, fname), OrderedDict((n, tensors[n]) for n in g), meta)
        files.append(fname)
        for n in g:
            weight_map[n] = fname
    index = OrderedDict(metadata=OrderedDict(total_size=total),
                        weight_map=OrderedDict(sorted(weight_map.items())))
    write_json(os.path.join(folder, 'model.safetensors.index.json'), index)
    return files


def load_folder_weights(folder):
    """Reads a folder's weights back (index or single file) -> OrderedDict name -> stored tensor."""
    index = os.path.join(folder, 'model.safetensors.index.json')
    out = OrderedDict()
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        total = 0
        for fname in sorted(set(idx['weight_map'].values())):
            t, meta = read_safetensors(os.path.join(folder, fname))
            assert meta == {'format': 'pt'}, meta
            for n, v in t.items():
                assert idx['weight_map'][n] == fname, n
                total += len(tensor_bytes(v))
            out.update(t)
        assert set(out) == set(idx['weight_map']), 'index and shards disagree'
        assert total == idx['metadata']['total_size'], (total, idx['metadata'])
    else:
        t, meta = read_safetensors(os.path.join(folder, 'model.safetensors'))
        assert meta == {'format': 'pt'}, meta
        out.update(t)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Images: the fixture picture and the slow (PIL) image processors
# ----------------------------------------------------------------------------------------------------------------

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
PIL_BICUBIC = 3  # PILImageResampling.BICUBIC


def fixture_picture():
    """48x40 (width x height) RGB: a red disc and a blue bar on a pale grey-green ground."""
    img = Image.new('RGB', (48, 40), (205, 212, 198))
    d = ImageDraw.Draw(img)
    d.ellipse((5, 6, 25, 30), fill=(214, 38, 44))
    d.rectangle((28, 12, 43, 35), fill=(36, 72, 200))
    d.line((2, 37, 46, 37), fill=(250, 200, 20), width=2)
    return img


def _rescale_normalize(arr_hwc_uint8, rescale_factor, mean, std):
    # BaseImageProcessor.rescale: float64 multiply, then cast to float32; normalize: float32 (x - mean) / std
    x = (arr_hwc_uint8.astype(np.float64) * rescale_factor).astype(np.float32)
    m = np.array(mean, dtype=x.dtype)
    s = np.array(std, dtype=x.dtype)
    x = (x - m) / s
    return x.transpose(2, 0, 1)  # ChannelDimension.FIRST


def clip_image_processor(img, cfg):
    """CLIPImageProcessor (slow): convert RGB, resize shortest edge (default_to_square=False, long side
    int(size * long / short)) with PIL, center crop ((H - h) // 2, (W - w) // 2), rescale, normalize."""
    img = img.convert('RGB')
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short = cfg['size']['shortest_edge']
    new_long = int(new_short * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    arr = np.array(img.resize((new_w, new_h), resample=cfg['resample'], reducing_gap=None))
    ch, cw = cfg['crop_size']['height'], cfg['crop_size']['width']
    top = (new_h - ch) // 2
    left = (new_w - cw) // 2
    arr = arr[top:top + ch, left:left + cw]
    return _rescale_normalize(arr, cfg['rescale_factor'], cfg['image_mean'], cfg['image_std'])


def fixed_size_image_processor(img, cfg):
    """SiglipImageProcessor / BlipImageProcessor (slow): resize to size {height,width} with PIL (no crop),
    rescale, normalize."""
    img = img.convert('RGB')
    arr = np.array(img.resize((cfg['size']['width'], cfg['size']['height']), resample=cfg['resample'],
                              reducing_gap=None))
    return _rescale_normalize(arr, cfg['rescale_factor'], cfg['image_mean'], cfg['image_std'])


def clip_preprocessor_config(size, processor_class):
    return OrderedDict([
        ('crop_size', OrderedDict(height=size, width=size)),
        ('do_center_crop', True),
        ('do_convert_rgb', True),
        ('do_normalize', True),
        ('do_rescale', True),
        ('do_resize', True),
        ('image_mean', OPENAI_CLIP_MEAN),
        ('image_processor_type', 'CLIPImageProcessor'),
        ('image_std', OPENAI_CLIP_STD),
        ('processor_class', processor_class),
        ('resample', PIL_BICUBIC),
        ('rescale_factor', 1 / 255),
        ('size', OrderedDict(shortest_edge=size)),
    ])


def siglip_preprocessor_config(size, processor_class):
    return OrderedDict([
        ('do_convert_rgb', None),
        ('do_normalize', True),
        ('do_rescale', True),
        ('do_resize', True),
        ('image_mean', IMAGENET_STANDARD_MEAN),
        ('image_processor_type', 'SiglipImageProcessor'),
        ('image_std', IMAGENET_STANDARD_STD),
        ('processor_class', processor_class),
        ('resample', PIL_BICUBIC),
        ('rescale_factor', 1 / 255),
        ('size', OrderedDict(height=size, width=size)),
    ])


def blip_preprocessor_config(size, processor_class):
    return OrderedDict([
        ('do_convert_rgb', True),
        ('do_normalize', True),
        ('do_rescale', True),
        ('do_resize', True),
        ('image_mean', OPENAI_CLIP_MEAN),
        ('image_processor_type', 'BlipImageProcessor'),
        ('image_std', OPENAI_CLIP_STD),
        ('processor_class', processor_class),
        ('resample', PIL_BICUBIC),
        ('rescale_factor', 1 / 255),
        ('size', OrderedDict(height=size, width=size)),
    ])


def image_batch(P_gen, png_pixels, size, batch=2):
    """Row 0: the fixture PNG through the image processor; other rows: N(0,1) pixels."""
    rows = [torch.from_numpy(png_pixels.copy()).to(torch.float32)]
    for _ in range(batch - 1):
        rows.append(torch.randn((3, size, size), generator=P_gen, dtype=torch.float64).to(torch.float32))
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------------------------
# Greedy decoding by full re-forward, and the checks on it
# ----------------------------------------------------------------------------------------------------------------

def greedy(step_logits, input_ids, attention_mask, steps=GREEDY_STEPS):
    """step_logits(ids, mask) -> logits [B, T, V] of the last forward. Appends the argmax each step (no cache, no
    stopping). Returns (tokens [B,N] int64, margin [B,N] top1 - top2 of the logits that chose each token)."""
    ids, mask = input_ids.clone(), attention_mask.clone()
    toks, margins = [], []
    for _ in range(steps):
        last = step_logits(ids, mask)[:, -1, :]
        top = torch.topk(last, 2, dim=-1)
        nxt = top.indices[:, 0]
        toks.append(nxt)
        margins.append(top.values[:, 0] - top.values[:, 1])
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(toks, 1).to(torch.int64), torch.stack(margins, 1)


def greedy_ok(tokens, margin, need_distinct=MIN_DISTINCT, need_margin=MIN_MARGIN):
    distinct = min(len(set(r.tolist())) for r in tokens)
    return distinct >= need_distinct and float(margin.min()) >= need_margin, distinct, float(margin.min())


def zero_padded(t, attention_mask):
    """Zeroes the outputs of padded query positions (masked garbage in every implementation)."""
    return t * attention_mask.to(t.dtype)[..., None]


def f32(t):
    return t.detach().to(torch.float32).contiguous() if t.is_floating_point() else t.detach().contiguous()


def deep(obj):
    return copy.deepcopy(obj)
