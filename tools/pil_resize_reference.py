"""Writes electron/engine/testdata/pil_resize.safetensors: a small noisy RGB picture and Pillow's resizes of it with
every resampling filter (down and up, each axis on its own), the reference electron/engine/image.test.ts holds
`pilResize` to byte for byte. Run with Debian's python3 (python3-pil, python3-numpy): /usr/bin/python3 tools/pil_resize_reference.py
"""

import json
import os
import struct

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'electron', 'engine', 'testdata', 'pil_resize.safetensors')
FILTERS = {'nearest': Image.NEAREST, 'box': Image.BOX, 'bilinear': Image.BILINEAR, 'hamming': Image.HAMMING,
           'bicubic': Image.BICUBIC, 'lanczos': Image.LANCZOS}
SIZES = [(13, 9), (47, 31), (29, 11)]  # (width, height): both down, both up, width kept / height down


def main():
    rng = np.random.default_rng(7)
    # Smooth gradients plus noise, so both the filter shape and the 8-bit rounding are exercised.
    h, w = 23, 29
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), (xx + yy) * 255 / (w + h - 2)], -1)
    src = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    tensors = {'source': src}
    im = Image.fromarray(src)
    for name, f in FILTERS.items():
        for (tw, th) in SIZES:
            tensors[f'{name}.{tw}x{th}'] = np.asarray(im.resize((tw, th), resample=f, reducing_gap=None))
    header, blobs, offset = {'__metadata__': {'pillow': Image.__version__}}, [], 0
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k]).tobytes()
        header[k] = {'dtype': 'U8', 'shape': list(tensors[k].shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(OUT, 'wb') as fh:
        fh.write(struct.pack('<Q', len(text)))
        fh.write(text)
        for b in blobs:
            fh.write(b)
    print(f'wrote {OUT} ({len(tensors)} tensors, Pillow {Image.__version__})')


if __name__ == '__main__':
    main()
