import os
import time

import torch

from . import encoder_cases, llm_cases, mm_cases
from .common import TESTDATA
from .runner import run_case

ALL = []
for mod in (encoder_cases, llm_cases, mm_cases):
    ALL += mod.CASES


def main(argv):
    only = None
    out = TESTDATA
    rest = list(argv)
    while rest:
        a = rest.pop(0)
        if a == '--only':
            only = rest.pop(0).split(',')
        elif a == '--out':
            out = rest.pop(0)
        else:
            raise SystemExit(f'unknown argument {a}')
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    names = [c.name for c in ALL]
    if only:
        bad = [n for n in only if n not in names]
        if bad:
            raise SystemExit(f'unknown case(s) {bad}; cases: {names}')
    for c in ALL:
        if only and c.name not in only:
            continue
        t = time.time()
        run_case(c, out)
        print(f'  ({time.time() - t:.1f}s)', flush=True)
