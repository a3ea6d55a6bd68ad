#!/usr/bin/env python3
"""Attributes a wasm module's code size to crates, from its `name` section
(cargo's output, before wasm-bindgen/wasm-opt strip it): function body bytes
grouped by the crate in the demangled-ish symbol, plus data segment bytes.
    python3 crates/hush-wasm/bench/wasm-sizes.py target/wasm32-unknown-unknown/wasm/hush_wasm.wasm
"""
import re
import sys
from collections import Counter


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]; i += 1
        r |= (x & 0x7f) << s; s += 7
        if x < 0x80:
            return r, i


def main(path):
    b = open(path, 'rb').read()
    i = 8
    sections = []
    while i < len(b):
        sid = b[i]; i += 1
        size, i = leb(b, i)
        sections.append((sid, i, size))
        i += size
    imported = 0
    bodies = []
    names = {}
    data = 0
    for sid, off, size in sections:
        if sid == 2:  # imports: count function imports
            n, j = leb(b, off)
            for _ in range(n):
                for _ in range(2):
                    l, j = leb(b, j); j += l
                kind = b[j]; j += 1
                if kind == 0:
                    _, j = leb(b, j); imported += 1
                elif kind == 1:
                    j += 1; fl, j = leb(b, j); _, j = leb(b, j)
                    if fl & 1: _, j = leb(b, j)
                elif kind == 2:
                    fl, j = leb(b, j); _, j = leb(b, j)
                    if fl & 1: _, j = leb(b, j)
                elif kind == 3:
                    j += 2
        elif sid == 10:
            n, j = leb(b, off)
            for _ in range(n):
                l, j = leb(b, j); bodies.append(l); j += l
        elif sid == 11:
            data += size
        elif sid == 0:
            l, j = leb(b, off)
            nm = b[j:j + l].decode(errors='replace'); j += l
            if nm != 'name':
                continue
            end = off + size
            while j < end:
                sub = b[j]; j += 1
                sl, j = leb(b, j)
                if sub == 1:
                    n, k = leb(b, j)
                    for _ in range(n):
                        idx, k = leb(b, k); l, k = leb(b, k)
                        names[idx] = b[k:k + l].decode(errors='replace'); k += l
                j += sl
    by = Counter()
    for n, size in enumerate(bodies):
        name = names.get(imported + n, '?')
        by[crate_of(name)] += size
    total = sum(bodies)
    print(f'{path}: {len(b)} bytes; code {total}, data {data}, other {len(b) - total - data}')
    for crate, size in by.most_common(25):
        print(f'  {size:8d} {100 * size / total:5.1f}%  {crate}')


def crate_of(name):
    """The first crate a (legacy or v0) mangled Rust symbol names."""
    if name.startswith('_R'):
        m = re.search(r'C[sd]?[0-9A-Za-z]*_(\d+)([A-Za-z_][A-Za-z0-9_]*)', name) or re.search(r'C(\d+)([A-Za-z_][A-Za-z0-9_]*)', name)
        if m:
            return m.group(2)[: int(m.group(1))]
        return 'v0?'
    if name.startswith('_ZN'):
        i = 3
        m = re.match(r'(\d+)', name[i:])
        if not m:
            return 'legacy?'
        n = int(m.group(1)); i += len(m.group(1))
        ident = name[i:i + n]
        ident = ident.replace('_$LT$', '').replace('$LT$', '').lstrip('_').replace('$RF$', '').replace('mut$u20$', '').replace('dyn$u20$', '')
        ident = ident.split('..')[0].split('$')[0]
        return ident or 'generic'
    return name.split('::')[0][:30]


if __name__ == '__main__':
    main(sys.argv[1])
