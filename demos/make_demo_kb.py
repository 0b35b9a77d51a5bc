"""Rebuild demos/kb/ and demos/questions/ from SQuAD v1.1 dev (training articles only).

    python demos/make_demo_kb.py [--data DIR]     # DIR: the data folder [default: $SEAL_RAG_DATA]

Writes 12 passages from each of three training articles as text files, and speaks two
questions per article with flite's `slt` voice, keeping questions that the text oracle
(all-MiniLM-L6-v2 on the true question) ranks first, so the demo is about hearing, not
about the text model's limits.
"""

import argparse
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np

from seal_rag import SpeechEmbedding
from seal_rag.bench.data import add_data_argument, data_path, data_root

ARTICLES = ["Steam engine", "Oxygen", "Apollo program"]
PASSAGES_PER_ARTICLE = 12
QUESTIONS_PER_ARTICLE = 2
HERE = Path(__file__).resolve().parent
VOICE = "slt"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
add_data_argument(parser)
SQUAD = data_path(data_root(parser.parse_args().data), "qa", "squad-v1.1-dev")
split = json.loads((SQUAD / "split.json").read_text())
assert all(a in split["train_articles"] for a in ARTICLES), "demo passages must come from training articles"
passages = [json.loads(line) for line in (SQUAD / "passages.jsonl").open()]
chosen = [p for a in ARTICLES for p in [p for p in passages if p["title"] == a][:PASSAGES_PER_ARTICLE]]
(HERE / "kb").mkdir(exist_ok=True)
files = {}
for p in chosen:
    name = p["passage_id"].replace(" ", "_").replace("#", "_") + ".txt"
    (HERE / "kb" / name).write_text(f"{p['title']}\n\n{p['text']}\n")
    files[p["passage_id"]] = name

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = SpeechEmbedding.from_pretrained()
texts = [p["text"] for p in chosen]
title_of = {p["passage_id"]: p["title"] for p in chosen}
passage_vectors = model.embed_texts(texts)
questions = [json.loads(line) for line in (SQUAD / "questions.jsonl").open()]
(HERE / "questions").mkdir(exist_ok=True)
rows = []
for article in ARTICLES:
    kept = 0
    for q in questions:
        if kept == QUESTIONS_PER_ARTICLE or q["passage_id"] not in files or title_of[q["passage_id"]] != article:
            continue
        best = int(np.argmax(passage_vectors @ model.embed_texts([q["question"]])[0]))
        if chosen[best]["passage_id"] != q["passage_id"]:
            continue
        wav = f"q{len(rows) + 1}.wav"
        subprocess.run(["flite", "-voice", VOICE, "-t", q["question"], "-o", str(HERE / "questions" / wav)], check=True)
        rows.append({"audio": wav, "question": q["question"], "gold_source": files[q["passage_id"]], "voice": f"flite:{VOICE}"})
        kept += 1
(HERE / "questions" / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
print(f"{len(chosen)} passages, {len(rows)} spoken questions")
