"""Build the benchmark and training data folder from each set's public download.

    seal-rag bench build-data SET --raw PATH [--clips DIR] [--data DIR]

Nothing is downloaded here: fetch each original yourself, then point `--raw` at it. The output
goes to the folder `--data` (else `$SEAL_RAG_DATA`) names, which is created if need be, in the
layout `seal_rag.bench.data` describes. Rebuilt from the originals below, the text files are
byte for byte the published ones; re-encoded audio may differ from them by a few 16-bit steps.

squad        qa/squad-v1.1-dev, from the official SQuAD v1.1 dev set (CC BY-SA 4.0):
             curl -LO https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json
             seal-rag bench build-data squad --raw dev-v1.1.json
             split.json is the project's own train/held-out split, copied from manifests/.
medquad      qa/medquad (CC BY 4.0):
             git clone https://github.com/abachaa/MedQuAD   (commit 577bd37b96c02d1833b2c9eed2de9f96964e96cb)
             seal-rag bench build-data medquad --raw MedQuAD
pubmedqa     qa/pubmedqa, PQA-L (MIT):
             git clone https://github.com/pubmedqa/pubmedqa   (commit 1cbae8e92f72f20c8d3747cbb3bf5bc53554d997)
             seal-rag bench build-data pubmedqa --raw pubmedqa/data
covidqa      qa/covidqa, the 2020-04-23 release of COVID-QA (Apache-2.0):
             git clone https://github.com/deepset-ai/COVID-QA   (commit fb2eb5e249618457e5359806601086c635c8eb8f)
             seal-rag bench build-data covidqa --raw COVID-QA/data/question-answering/200423_covidQA.json
ljspeech     speech/ljspeech-385 (public domain), 2.6 GB:
             curl -LO https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2 && tar xjf LJSpeech-1.1.tar.bz2
             seal-rag bench build-data ljspeech --raw LJSpeech-1.1
commonvoice  speech/commonvoice-100, 100 Common Voice English v6.1 clips (CC0). The published set
             was made from the copy of these clips (16 kHz WAV) in:
             git clone https://github.com/rigved/rit-engl-682-spring-2021-project cv   (commit 637c494f0bff9f6e251b92beb2838c2c93819b9a)
             seal-rag bench build-data commonvoice --raw cv/validated.csv --clips cv/data
             Common Voice's own v6.1 English release also works (MP3 audio, so not bit-identical):
             seal-rag bench build-data commonvoice --raw cv-corpus-6.1-2020-12-11/en/validated.tsv
speech/fixtures are small clips the repository carries itself (tests/data); nothing to build.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import soundfile as sf
import soxr

from ..errors import DataNotFoundError, DocumentError
from ..progress import progress_bar
from .data import ENV, add_data_argument

MANIFESTS = Path(__file__).with_name("manifests")
SAMPLE_RATE = 16000  # what seal_rag.audio feeds the model; not imported from there to spare a torch import

SOURCES = {
    "squad": "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
    "medquad": "`git clone https://github.com/abachaa/MedQuAD`",
    "pubmedqa": "`git clone https://github.com/pubmedqa/pubmedqa` (its data/ folder)",
    "covidqa": "`git clone https://github.com/deepset-ai/COVID-QA` (data/question-answering/200423_covidQA.json)",
    "ljspeech": "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
    "commonvoice": "`git clone https://github.com/rigved/rit-engl-682-spring-2021-project` (validated.csv, data/)"
                   " or Common Voice English v6.1 (validated.tsv, clips/)",
}

# COVID-QA papers are cut into overlapping windows of whitespace-separated words.
WINDOW_WORDS = 200
WINDOW_STRIDE = 100

LJ_PASSAGE_ROWS = 5  # consecutive metadata rows (sentences) per LJ Speech passage
# The query clips: two chapters' worth. LJ002-0115 is left out because the copy the published
# figures were measured on lacks it.
LJ_CLIPS = [f"LJ001-{i:04d}" for i in range(1, 187)] + [f"LJ002-{i:04d}" for i in range(1, 201) if i != 115]


def _need(path: Path, name: str, what: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(f"{path} is missing: --raw must point at {what}; get it from {SOURCES[name]}")
    return path


def _read_json(path: Path, name: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DocumentError(f"{path} is not JSON ({error}): download it again from {SOURCES[name]}") from None


def _write_jsonl(path: Path, rows: list[dict], ascii_only: bool = False) -> None:
    # The published QA files hold raw UTF-8 and the speech files \u escapes; both read the same,
    # and keeping each as published makes a rebuild byte-identical (checkable by checksum).
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows)


def _to_flac(source: Path, target: Path) -> None:
    """Any soundfile-readable clip -> 16 kHz mono 16-bit FLAC."""
    try:
        samples, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise DocumentError(f"{source} is not readable audio ({error}): MP3 needs libsndfile >= 1.1 "
                            "(`pip install -U soundfile`), or convert the clips to WAV first") from None
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    sf.write(target, mono, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def _convert(pairs: list[tuple[Path, Path]], label: str) -> None:
    for folder in {target.parent for _, target in pairs}:
        folder.mkdir(exist_ok=True)
    with progress_bar(label, len(pairs)) as advance:
        for source, target in pairs:
            _to_flac(source, target)
            advance(1)


def build_squad(raw: Path, out: Path) -> str:
    """Passages are paragraphs, "<title>#<index>"; the title field has spaces for underscores."""
    articles = _read_json(_need(raw, "squad", "dev-v1.1.json"), "squad").get("data", [])
    split_text = (MANIFESTS / "squad-split.json").read_text()
    split = json.loads(split_text)
    unknown = [a["title"] for a in articles if a["title"].replace("_", " ") not in split["train_articles"] + split["holdout_articles"]]
    if not articles or unknown:
        what = f"articles {unknown[:3]} are in neither split" if unknown else "no articles"
        raise DocumentError(f"{raw} is not the SQuAD v1.1 dev set ({what}): download {SOURCES['squad']}")
    passages, questions = [], []
    for article in articles:
        for index, paragraph in enumerate(article["paragraphs"]):
            pid = f"{article['title']}#{index}"
            passages.append({"passage_id": pid, "title": article["title"].replace("_", " "), "text": paragraph["context"]})
            # Answers de-duplicated (annotators often agree) and sorted, as published.
            questions += [{"qid": qa["id"], "question": qa["question"], "passage_id": pid,
                           "answers": sorted({a["text"] for a in qa["answers"]})} for qa in paragraph["qas"]]
    _write_jsonl(out / "passages.jsonl", passages)
    _write_jsonl(out / "questions.jsonl", questions)
    (out / "split.json").write_text(split_text)
    return f"{len(passages)} passages, {len(questions)} questions"


def build_medquad(raw: Path, out: Path) -> str:
    """One passage per answered QA pair ("A_" + qid); the subsets without answers drop out.

    qids are MedQuAD's own and repeat across subsets ("0000001-1" is in seven of them); kept
    as published, so passage ids are unique only together with `subset`.
    """
    subsets = sorted((d for d in _need(raw, "medquad", "a MedQuAD clone").iterdir() if d.is_dir() and d.name.split("_")[0].isdigit()),
                     key=lambda d: int(d.name.split("_")[0]))  # 1_CancerGov_QA ... 12_...: numeric order
    if not subsets:
        raise DataNotFoundError(f"{raw} holds no MedQuAD subset folders (1_CancerGov_QA, ...): get it with {SOURCES['medquad']}")
    passages, questions = [], []
    for subset in subsets:
        for file in sorted(subset.glob("*.xml")):
            try:
                document = ET.parse(file).getroot()
            except ET.ParseError as error:
                raise DocumentError(f"{file} is not valid XML ({error}): restore it with `git checkout` in the clone") from None
            focus = document.findtext("Focus")
            for pair in document.iter("QAPair"):
                question = pair.find("Question")
                answer = " ".join((pair.findtext("Answer") or "").split())
                if question is None or not answer:
                    continue
                qid = question.get("qid")
                questions.append({"qid": qid, "question": question.text, "qtype": question.get("qtype"),
                                  "passage_id": "A_" + qid, "focus": focus, "subset": subset.name})
                passages.append({"passage_id": "A_" + qid, "text": answer, "focus": focus, "source": document.get("source"),
                                 "url": document.get("url"), "subset": subset.name})
    _write_jsonl(out / "passages.jsonl", passages)
    _write_jsonl(out / "questions.jsonl", questions)
    return f"{len(passages)} passages, {len(questions)} questions"


def build_pubmedqa(raw: Path, out: Path) -> str:
    """One passage per PubMed id: the abstract's sections (minus its conclusion) joined."""
    items = _read_json(_need(raw / "ori_pqal.json", "pubmedqa", "pubmedqa's data/ folder"), "pubmedqa")
    test = _read_json(_need(raw / "test_ground_truth.json", "pubmedqa", "pubmedqa's data/ folder"), "pubmedqa")
    passages = [{"passage_id": pmid, "text": " ".join(item["CONTEXTS"]), "labels": item["LABELS"],
                 "meshes": item["MESHES"], "year": item["YEAR"]} for pmid, item in items.items()]
    questions = [{"qid": pmid, "question": item["QUESTION"], "passage_id": pmid, "final_decision": item["final_decision"],
                  "long_answer": item["LONG_ANSWER"], "official_test_split": pmid in test} for pmid, item in items.items()]
    _write_jsonl(out / "passages.jsonl", passages)
    _write_jsonl(out / "questions.jsonl", questions)
    return f"{len(passages)} passages, {len(questions)} questions"


def word_windows(doc_id: str, text: str) -> list[dict]:
    """Windows of WINDOW_WORDS words every WINDOW_STRIDE words, the last one reaching the end.

    char_start/char_end span the first to the last word, so `text[char_start:char_end]` is the
    window's text with the paper's own whitespace (newlines included) between its words.
    """
    words = [m.span() for m in re.finditer(r"\S+", text)]
    windows = []
    for start in range(0, len(words), WINDOW_STRIDE):
        first, last = words[start][0], words[min(start + WINDOW_WORDS, len(words)) - 1][1]
        windows.append({"passage_id": f"{doc_id}_w{len(windows)}", "doc_id": doc_id, "char_start": first,
                        "char_end": last, "text": text[first:last]})
        if start + WINDOW_WORDS >= len(words):
            break
    return windows


def build_covidqa(raw: Path, out: Path) -> str:
    """Papers cut into word windows; a question's gold windows hold one of its answer spans whole."""
    papers = _read_json(_need(raw, "covidqa", "200423_covidQA.json"), "covidqa").get("data", [])
    passages, questions, dropped = [], [], 0
    for paper in papers:
        for paragraph in paper["paragraphs"]:
            doc_id = str(paragraph["document_id"])
            windows = word_windows(doc_id, paragraph["context"])
            passages += windows
            for qa in paragraph["qas"]:
                # The span is the annotation as given (answer_start + length, trailing space and all).
                gold = {w["passage_id"] for a in qa["answers"] for w in windows
                        if w["char_start"] <= a["answer_start"] and a["answer_start"] + len(a["text"]) <= w["char_end"]}
                if not gold:
                    dropped += 1  # no gold passage: it could not be scored
                    continue
                questions.append({"qid": qa["id"], "question": qa["question"], "doc_id": doc_id,
                                  "gold_passage_ids": sorted(gold), "answers": [a["text"] for a in qa["answers"]]})
    if not passages:
        raise DocumentError(f"{raw} holds no papers: download 200423_covidQA.json with {SOURCES['covidqa']}")
    _write_jsonl(out / "passages.jsonl", passages)
    _write_jsonl(out / "questions.jsonl", questions)
    return f"{len(passages)} passages, {len(questions)} questions" + (f" ({dropped} without a whole answer window left out)" if dropped else "")


def build_ljspeech(raw: Path, out: Path, clip_ids: list[str] = LJ_CLIPS) -> str:
    """The whole LJ Speech text as passages of 5 consecutive sentences, the clips as queries."""
    rows = []
    with _need(raw / "metadata.csv", "ljspeech", "the LJSpeech-1.1 folder").open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\r\n").split("|")  # not csv: the text holds unbalanced quote marks
            if len(fields) != 3:
                raise DocumentError(f"{raw / 'metadata.csv'} line {number} is not id|text|normalized text: "
                                    f"download it again from {SOURCES['ljspeech']}")
            rows.append(fields)
    # The normalized column: numbers and abbreviations as read aloud ("fourteen fifty-five").
    passages = [{"passage_id": f"lj-{i // LJ_PASSAGE_ROWS:05d}", "text": " ".join(r[2] for r in rows[i:i + LJ_PASSAGE_ROWS])}
                for i in range(0, len(rows), LJ_PASSAGE_ROWS)]
    where = {r[0]: i for i, r in enumerate(rows)}
    missing = [c for c in clip_ids if c not in where or not (raw / "wavs" / f"{c}.wav").is_file()]
    if missing:
        raise DataNotFoundError(f"LJ Speech clip {missing[0]} is missing from {raw} ({len(missing)} in all): "
                                f"use the complete LJSpeech-1.1 from {SOURCES['ljspeech']}")
    queries = [{"audio": f"audio/{c}.flac", "transcript": rows[where[c]][2], "speaker": "LJ",
                "passage_id": f"lj-{where[c] // LJ_PASSAGE_ROWS:05d}"} for c in clip_ids]
    _write_jsonl(out / "passages.jsonl", passages, ascii_only=True)
    _write_jsonl(out / "queries.jsonl", queries, ascii_only=True)
    _convert([(raw / "wavs" / f"{c}.wav", out / "audio" / f"{c}.flac") for c in clip_ids], "LJ Speech clips to 16 kHz FLAC")
    return f"{len(passages)} passages, {len(queries)} queries"


def _published_sentence(sentence: str) -> str:
    # The published set read its sentences as CSV, which drops the quote marks of a sentence
    # that starts with one ('"Obake karuta" is ...' -> 'Obake karuta is ...'); done the same way
    # so that passages and transcripts match the published ones.
    return next(csv.reader([sentence], delimiter="\t"))[0]


def build_commonvoice(raw: Path, out: Path, clips: Path | None = None) -> str:
    """The 100 chosen clips (manifests/) as queries; their sentences plus the vendored distractors as passages."""
    chosen = (MANIFESTS / "commonvoice-100-clips.txt").read_text().split()
    clips = clips or raw.parent / "clips"  # Common Voice's own layout: <lang>/validated.tsv beside <lang>/clips/
    rows = {}
    with _need(raw, "commonvoice", "validated.tsv or validated.csv").open(newline="", encoding="utf-8") as f:
        # Common Voice's TSVs are unquoted, so a quote mark is just a character there.
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if raw.suffix == ".tsv" else csv.DictReader(f)
        for row in reader:
            if Path(row.get("path") or "").stem in chosen:
                rows[Path(row["path"]).stem] = row
    missing = [c for c in chosen if c not in rows]
    if missing:
        raise DataNotFoundError(f"{raw} lacks {len(missing)} of the 100 clips (first {missing[0]}): use Common Voice English v6.1; "
                                f"get it from {SOURCES['commonvoice']}")
    sources = [_need(clips / rows[c]["path"], "commonvoice", "the clips folder (--clips)") for c in chosen]
    sentences = [_published_sentence(rows[c]["sentence"]) for c in chosen]
    passages = [{"passage_id": f"cv-{i:03d}", "text": s} for i, s in enumerate(sentences)]
    passages += [json.loads(line) for line in (MANIFESTS / "commonvoice-100-distractors.jsonl").open(encoding="utf-8")]
    # speaker: the start of the (already anonymous) client_id is enough to tell speakers apart.
    queries = [{"audio": f"audio/{c}.flac", "transcript": s, "speaker": rows[c]["client_id"][:16],
                "accent": rows[c].get("accent") or rows[c].get("accents") or "", "passage_id": f"cv-{i:03d}"}
               for i, (c, s) in enumerate(zip(chosen, sentences))]
    _write_jsonl(out / "passages.jsonl", passages, ascii_only=True)
    _write_jsonl(out / "queries.jsonl", queries, ascii_only=True)
    _convert([(s, out / "audio" / f"{c}.flac") for c, s in zip(chosen, sources)], "Common Voice clips to 16 kHz FLAC")
    return f"{len(passages)} passages, {len(queries)} queries"


BUILDERS = {  # set name -> (folder under the data folder, builder)
    "squad": ("qa/squad-v1.1-dev", build_squad),
    "medquad": ("qa/medquad", build_medquad),
    "pubmedqa": ("qa/pubmedqa", build_pubmedqa),
    "covidqa": ("qa/covidqa", build_covidqa),
    "ljspeech": ("speech/ljspeech-385", build_ljspeech),
    "commonvoice": ("speech/commonvoice-100", build_commonvoice),
}


def main(argv: list[str] | None = None) -> None:
    # The whole module doc as help: it says where to download each set and what --raw is.
    parser = argparse.ArgumentParser(prog="seal-rag bench build-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=list(BUILDERS))
    parser.add_argument("--raw", type=Path, required=True, help="the set's original download (file or folder; see the module doc)")
    parser.add_argument("--clips", type=Path, default=None, help="commonvoice only: the clips folder [default: clips/ beside --raw]")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    if args.clips and args.set != "commonvoice":
        parser.error("--clips is for commonvoice only")
    root = args.data or os.environ.get(ENV)
    if not root:
        raise DataNotFoundError(f"no data folder to write to: pass --data DIR or set {ENV}")
    folder, build = BUILDERS[args.set]
    out = Path(root).expanduser() / folder
    out.mkdir(parents=True, exist_ok=True)
    extra = {"clips": args.clips} if args.set == "commonvoice" else {}
    summary = build(args.raw.expanduser(), out, **extra)
    print(f"{args.set}: {summary} -> {out}")
