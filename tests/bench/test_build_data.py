"""seal-rag bench build-data: each converter on a tiny raw input in its original's format.

The expected keys, key order and id formats are those of the published data folder.
"""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from seal_rag.bench import build_data
from seal_rag.bench.build_data import LJ_CLIPS, MANIFESTS, build_ljspeech, main, word_windows
from seal_rag.bench.data import ENV
from seal_rag.errors import DataNotFoundError, DocumentError

CV_CLIPS = (MANIFESTS / "commonvoice-100-clips.txt").read_text().split()


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def build(name: str, raw, out, *extra: str):
    main([name, "--raw", str(raw), "--data", str(out), *extra])
    return out / build_data.BUILDERS[name][0]


def write_wav(path, seconds: float, rate: int, channels: int = 1, fmt: str = "WAV") -> None:
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)
    sf.write(path, np.repeat(tone[:, None], channels, axis=1).astype(np.float32), rate, format=fmt)


def assert_flac_16k_mono(path, seconds: float) -> None:
    info = sf.info(path)
    assert (info.format, info.samplerate, info.channels, info.subtype) == ("FLAC", 16000, 1, "PCM_16")
    assert abs(info.frames - seconds * 16000) <= 0.01 * 16000


# --- SQuAD -----------------------------------------------------------------------------------

SQUAD = {"data": [
    {"title": "Super_Bowl_50", "paragraphs": [
        {"context": "Denver beat Carolina 24–10.", "qas": [
            {"id": "q1", "question": "Who won?", "answers": [
                {"answer_start": 0, "text": "Denver beat"}, {"answer_start": 0, "text": "Denver"}, {"answer_start": 0, "text": "Denver"}]}]},
        {"context": "It was played in Santa Clara.", "qas": [
            {"id": "q2", "question": "Where?", "answers": [{"answer_start": 17, "text": "Santa Clara"}]}]}]},
    {"title": "Sky_(United_Kingdom)", "paragraphs": [{"context": "Sky is a broadcaster.", "qas": []}]}],
    "version": "1.1"}


def test_squad_passages_questions_and_split(tmp_path):
    raw = tmp_path / "dev-v1.1.json"
    raw.write_text(json.dumps(SQUAD))
    out = build("squad", raw, tmp_path / "new" / "data")  # the data folder does not exist yet
    passages, questions = jsonl(out / "passages.jsonl"), jsonl(out / "questions.jsonl")
    assert [list(p) for p in passages] == [["passage_id", "title", "text"]] * 3
    assert [p["passage_id"] for p in passages] == ["Super_Bowl_50#0", "Super_Bowl_50#1", "Sky_(United_Kingdom)#0"]
    assert passages[2]["title"] == "Sky (United Kingdom)"
    assert [list(q) for q in questions] == [["qid", "question", "passage_id", "answers"]] * 2
    assert questions[0] == {"qid": "q1", "question": "Who won?", "passage_id": "Super_Bowl_50#0", "answers": ["Denver", "Denver beat"]}
    assert questions[1]["passage_id"] == "Super_Bowl_50#1"
    assert "24–10" in (out / "passages.jsonl").read_text(encoding="utf-8")  # raw UTF-8, as published
    assert (out / "split.json").read_bytes() == (MANIFESTS / "squad-split.json").read_bytes()


def test_squad_refuses_articles_outside_the_split(tmp_path):
    raw = tmp_path / "train-v1.1.json"
    raw.write_text(json.dumps({"data": [{"title": "Not_A_Dev_Article", "paragraphs": []}]}))
    with pytest.raises(DocumentError, match="not the SQuAD v1.1 dev set"):
        build("squad", raw, tmp_path / "data")


# --- MedQuAD ---------------------------------------------------------------------------------

def medquad_xml(doc_id: str, source: str, focus: str, pairs: list[tuple[str, str, str]]) -> str:
    body = "".join(f'<QAPair pid="{i}"><Question qid="{doc_id}-{i}" qtype="{qtype}">{q}</Question><Answer>{a}</Answer></QAPair>\n'
                   for i, (q, qtype, a) in enumerate(pairs, 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document id="{doc_id}" source="{source}" url="https://x.org/{doc_id}">\n'
            f"<Focus>{focus}</Focus>\n<QAPairs>\n{body}</QAPairs>\n</Document>\n")


def test_medquad_answered_pairs_in_subset_order(tmp_path):
    raw = tmp_path / "MedQuAD"
    for folder, name, text in [
        ("2_GARD_QA", "0000004.xml", medquad_xml("0000004", "GARD", "Acne", [("What is (are) Acne ?", "information", "Acne is\n      a skin condition.")])),
        ("10_MPlus_ADAM_QA", "0000001.xml", medquad_xml("0000001", "ADAM", "Gout", [
            ("What is (are) Gout ?", "information", ""), ("How to treat Gout ?", "treatment", "Rest.")])),
        ("1_CancerGov_QA", "0000001_1.xml", medquad_xml("0000001_1", "CancerGov", "Leukemia", [
            ("What is (are) Leukemia ?", "information", "Leukemia   is a cancer.\n\n  It&apos;s treatable."),
            ("How to prevent Leukemia ?", "prevention", "   ")])),
    ]:
        (raw / folder).mkdir(parents=True)
        (raw / folder / name).write_text(text)
    (raw / "readme.txt").write_text("not a subset")
    out = build("medquad", raw, tmp_path / "data")
    passages, questions = jsonl(out / "passages.jsonl"), jsonl(out / "questions.jsonl")
    # Numeric subset order (10 after 2, though "10_" < "2_" as text); unanswered pairs dropped.
    assert questions[:2] == [
        {"qid": "0000001_1-1", "question": "What is (are) Leukemia ?", "qtype": "information", "passage_id": "A_0000001_1-1",
         "focus": "Leukemia", "subset": "1_CancerGov_QA"},
        {"qid": "0000004-1", "question": "What is (are) Acne ?", "qtype": "information", "passage_id": "A_0000004-1",
         "focus": "Acne", "subset": "2_GARD_QA"}]
    assert [(q["qid"], q["subset"]) for q in questions[2:]] == [("0000001-2", "10_MPlus_ADAM_QA")]
    assert [list(q) for q in questions] == [["qid", "question", "qtype", "passage_id", "focus", "subset"]] * 3
    assert [list(p) for p in passages] == [["passage_id", "text", "focus", "source", "url", "subset"]] * 3
    assert passages[0]["text"] == "Leukemia is a cancer. It's treatable."  # whitespace collapsed
    assert (passages[1]["source"], passages[1]["url"]) == ("GARD", "https://x.org/0000004")


def test_medquad_without_subsets_says_where_to_get_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="github.com/abachaa/MedQuAD"):
        build("medquad", tmp_path / "empty", tmp_path / "data")


# --- PubMedQA --------------------------------------------------------------------------------

def test_pubmedqa_one_passage_per_pmid(tmp_path):
    raw = tmp_path / "data"
    raw.mkdir()
    items = {pmid: {"QUESTION": f"Does {pmid} work?", "CONTEXTS": [f"Background {pmid}.", "Results ΔΨm."],
                    "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": ["Humans"], "YEAR": "2011",
                    "reasoning_required_pred": "yes", "reasoning_free_pred": "yes", "final_decision": decision,
                    "LONG_ANSWER": f"Conclusion {pmid}."}
             for pmid, decision in [("21645374", "yes"), ("16418930", "no"), ("9488747", "maybe")]}
    (raw / "ori_pqal.json").write_text(json.dumps(items))
    (raw / "test_ground_truth.json").write_text(json.dumps({"16418930": "no"}))
    out = build("pubmedqa", raw, tmp_path / "out")
    passages, questions = jsonl(out / "passages.jsonl"), jsonl(out / "questions.jsonl")
    assert [p["passage_id"] for p in passages] == ["21645374", "16418930", "9488747"]
    assert passages[0] == {"passage_id": "21645374", "text": "Background 21645374. Results ΔΨm.", "labels": ["BACKGROUND", "RESULTS"],
                           "meshes": ["Humans"], "year": "2011"}
    assert [list(p) for p in passages] == [["passage_id", "text", "labels", "meshes", "year"]] * 3
    assert [list(q) for q in questions] == [["qid", "question", "passage_id", "final_decision", "long_answer", "official_test_split"]] * 3
    assert [(q["qid"] == q["passage_id"], q["official_test_split"]) for q in questions] == [(True, False), (True, True), (True, False)]
    assert questions[2]["final_decision"] == "maybe" and questions[2]["long_answer"] == "Conclusion 9488747."


def test_pubmedqa_missing_file_names_the_repository(tmp_path):
    with pytest.raises(DataNotFoundError, match="ori_pqal.json is missing.*github.com/pubmedqa/pubmedqa"):
        build("pubmedqa", tmp_path, tmp_path / "out")


# --- COVID-QA --------------------------------------------------------------------------------

def test_word_windows_of_a_short_text():
    assert word_windows("7", "  a b\nc ") == [{"passage_id": "7_w0", "doc_id": "7", "char_start": 2, "char_end": 7, "text": "a b\nc"}]


def test_covidqa_windows_and_gold_passages(tmp_path):
    words = [f"w{i}" for i in range(1150)]
    context = "Title\n\n" + "".join(w + ("\n\n" if i % 37 == 36 else " ") for i, w in enumerate(words[1:]))
    words[0] = "Title"

    def answer(first: int, last: int, trailing: str = "") -> dict:
        start = context.index(f" {words[first]} ") + 1 if first else 0  # " wN " is unique
        end = context.index(words[last], start) + len(words[last])
        return {"text": context[start:end] + trailing, "answer_start": start}

    qas = [{"id": 262, "question": "In the overlap?", "answers": [answer(1050, 1050)], "is_impossible": False},
           # As annotated: the trailing space runs past w9's last word, so only w10 holds it whole.
           {"id": 263, "question": "Trailing space?", "answers": [answer(1099, 1099, " ")], "is_impossible": False},
           {"id": 264, "question": "Across a window edge?", "answers": [answer(150, 210)], "is_impossible": False},
           {"id": 265, "question": "Longer than a window?", "answers": [answer(300, 560)], "is_impossible": False}]
    raw = tmp_path / "200423_covidQA.json"
    raw.write_text(json.dumps({"data": [{"paragraphs": [{"context": context, "document_id": 630, "qas": qas}]}]}))
    out = build("covidqa", raw, tmp_path / "data")
    passages, questions = jsonl(out / "passages.jsonl"), jsonl(out / "questions.jsonl")
    # 200-word windows every 100 words; the 11th (words 1000-1149) reaches the end.
    assert [p["passage_id"] for p in passages] == [f"630_w{k}" for k in range(11)]
    assert [list(p) for p in passages] == [["passage_id", "doc_id", "char_start", "char_end", "text"]] * 11
    for k, p in enumerate(passages):
        assert p["doc_id"] == "630" and p["text"] == context[p["char_start"]:p["char_end"]]
        assert p["text"].split() == words[100 * k:100 * k + 200]
    assert [list(q) for q in questions] == [["qid", "question", "doc_id", "gold_passage_ids", "answers"]] * 3
    assert [(q["qid"], q["gold_passage_ids"]) for q in questions] == [
        (262, ["630_w10", "630_w9"]),  # sorted as text, as published
        (263, ["630_w10"]),
        (264, ["630_w1"]),
    ]  # 265 fits no window: it could not be scored, so it is left out
    assert questions[0]["answers"] == ["w1050"] and questions[0]["doc_id"] == "630"


# --- LJ Speech -------------------------------------------------------------------------------

def test_lj_clip_list_is_the_two_chapters_minus_the_absent_clip():
    assert len(LJ_CLIPS) == len(set(LJ_CLIPS)) == 385
    assert (LJ_CLIPS[0], LJ_CLIPS[185], LJ_CLIPS[186], LJ_CLIPS[-1]) == ("LJ001-0001", "LJ001-0186", "LJ002-0001", "LJ002-0200")
    assert "LJ002-0115" not in LJ_CLIPS


def test_ljspeech_five_sentence_passages_and_flac_queries(tmp_path):
    raw = tmp_path / "LJSpeech-1.1"
    (raw / "wavs").mkdir(parents=True)
    rows = [(f"LJ001-{i:04d}", f'Raw "{i} 1455 Müller', f'Sentence "{i} fourteen fifty-five Müller') for i in range(1, 13)]
    (raw / "metadata.csv").write_bytes("".join("|".join(r) + "\r\n" for r in rows).encode())  # CRLF, as shipped
    clips = ["LJ001-0002", "LJ001-0007", "LJ001-0011"]
    for clip in clips:
        write_wav(raw / "wavs" / f"{clip}.wav", 0.5, 22050)
    out = tmp_path / "ljspeech-385"
    out.mkdir()
    build_ljspeech(raw, out, clips)
    passages, queries = jsonl(out / "passages.jsonl"), jsonl(out / "queries.jsonl")
    normalized = [r[2] for r in rows]
    assert passages == [{"passage_id": "lj-00000", "text": " ".join(normalized[0:5])},
                        {"passage_id": "lj-00001", "text": " ".join(normalized[5:10])},
                        {"passage_id": "lj-00002", "text": " ".join(normalized[10:12])}]
    assert queries[1] == {"audio": "audio/LJ001-0007.flac", "transcript": 'Sentence "7 fourteen fifty-five Müller', "speaker": "LJ",
                          "passage_id": "lj-00001"}
    assert [q["passage_id"] for q in queries] == ["lj-00000", "lj-00001", "lj-00002"]
    assert "M\\u00fcller" in (out / "queries.jsonl").read_text()  # ASCII JSON with escapes, as published
    for clip in clips:
        assert_flac_16k_mono(out / "audio" / f"{clip}.flac", 0.5)
    (raw / "wavs" / "LJ001-0011.wav").unlink()
    with pytest.raises(DataNotFoundError, match="LJ001-0011 is missing.*LJSpeech-1.1.tar.bz2"):
        build_ljspeech(raw, out, clips)


# --- Common Voice ----------------------------------------------------------------------------

CV_FIELDS = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent", "locale", "segment"]


def cv_rows(ext: str) -> list[dict]:
    """The 100 chosen clips in reverse (the manifest, not the table, sets the order) plus one other."""
    rows = [{"client_id": f"{i:016x}" + "ab" * 56, "path": f"{clip}.{ext}", "sentence": f"Sentence {i}.", "up_votes": "2",
             "down_votes": "0", "age": "", "gender": "", "accent": "us" if i % 2 else "indian", "locale": "en", "segment": ""}
            for i, clip in enumerate(CV_CLIPS)]
    rows[0]["sentence"] = '"Obake karuta" is an obsolete variation.'
    rows[1]["sentence"] = 'He said "hi" twice.'
    return [{**rows[0], "path": f"common_voice_en_1.{ext}", "sentence": '"An unclosed quote'}] + rows[::-1]


def test_commonvoice_from_the_carrier_csv(tmp_path):
    raw = tmp_path / "cv"
    (raw / "data").mkdir(parents=True)
    rows = cv_rows("wav")
    with (raw / "validated.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, CV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    for i, clip in enumerate(CV_CLIPS):
        write_wav(raw / "data" / f"{clip}.wav", 0.1, 16000 if i else 48000, 1 if i else 2)
    out = build("commonvoice", raw / "validated.csv", tmp_path / "data", "--clips", str(raw / "data"))
    passages, queries = jsonl(out / "passages.jsonl"), jsonl(out / "queries.jsonl")
    assert len(passages) == 2100 and all(list(p) == ["passage_id", "text"] for p in passages)
    assert [p["passage_id"] for p in passages[:2]] == ["cv-000", "cv-001"]
    assert (passages[99]["passage_id"], passages[100]["passage_id"], passages[-1]["passage_id"]) == ("cv-099", "distractor-0000", "distractor-1999")
    assert [q["audio"] for q in queries] == [f"audio/{clip}.flac" for clip in CV_CLIPS]
    assert [list(q) for q in queries] == [["audio", "transcript", "speaker", "accent", "passage_id"]] * 100
    assert queries[0] == {"audio": f"audio/{CV_CLIPS[0]}.flac", "transcript": "Obake karuta is an obsolete variation.",
                          "speaker": "0000000000000000", "accent": "indian", "passage_id": "cv-000"}
    assert queries[1]["transcript"] == passages[1]["text"] == 'He said "hi" twice.'
    assert queries[57]["transcript"] == passages[57]["text"] == "Sentence 57."
    for clip in (CV_CLIPS[0], CV_CLIPS[1]):  # the first was 48 kHz stereo
        assert_flac_16k_mono(out / "audio" / f"{clip}.flac", 0.1)


def test_commonvoice_from_the_official_tsv_with_mp3_clips(tmp_path):
    raw = tmp_path / "en"
    (raw / "clips").mkdir(parents=True)
    rows = cv_rows("mp3")
    # Common Voice's TSVs are not quoted: the unclosed quote must not swallow the rows after it.
    (raw / "validated.tsv").write_text("\t".join(CV_FIELDS) + "\n" + "".join("\t".join(r[k] for k in CV_FIELDS) + "\n" for r in rows))
    for clip in CV_CLIPS:
        write_wav(raw / "clips" / f"{clip}.mp3", 0.5, 48000, fmt="MP3")
    out = build("commonvoice", raw / "validated.tsv", tmp_path / "data")  # clips/ beside the table
    queries = jsonl(out / "queries.jsonl")
    assert len(queries) == 100 and queries[0]["transcript"] == "Obake karuta is an obsolete variation."
    assert queries[99]["transcript"] == "Sentence 99."
    assert_flac_16k_mono(out / "audio" / f"{CV_CLIPS[5]}.flac", 0.5)


def test_commonvoice_table_without_the_chosen_clips(tmp_path):
    table = tmp_path / "validated.tsv"
    table.write_text("\t".join(CV_FIELDS) + "\n" + "\t".join(["c", "common_voice_en_1.mp3", "Hi."] + [""] * 7) + "\n")
    with pytest.raises(DataNotFoundError, match="lacks 100 of the 100 clips.*v6.1"):
        build("commonvoice", table, tmp_path / "data")


def test_unreadable_clip_is_a_one_line_document_error(tmp_path):
    (tmp_path / "bad.mp3").write_bytes(b"not audio at all")
    with pytest.raises(DocumentError, match="bad.mp3 is not readable audio") as error:
        build_data._to_flac(tmp_path / "bad.mp3", tmp_path / "bad.flac")
    assert "\n" not in str(error.value)


# --- manifests and the command ---------------------------------------------------------------

def test_manifests_are_small_and_well_formed():
    assert sum(f.stat().st_size for f in MANIFESTS.iterdir()) < 500_000
    split = json.loads((MANIFESTS / "squad-split.json").read_text())
    assert len(split["train_articles"]) == 38 and len(split["holdout_articles"]) == 10
    assert not set(split["train_articles"]) & set(split["holdout_articles"])
    assert len(set(CV_CLIPS)) == 100 and all(c.startswith("common_voice_en_") for c in CV_CLIPS)
    distractors = jsonl(MANIFESTS / "commonvoice-100-distractors.jsonl")
    assert [d["passage_id"] for d in distractors] == [f"distractor-{i:04d}" for i in range(2000)]
    assert all(list(d) == ["passage_id", "text"] and d["text"] for d in distractors)


def test_data_folder_from_the_environment_or_a_one_line_error(tmp_path, monkeypatch):
    raw = tmp_path / "dev-v1.1.json"
    raw.write_text(json.dumps(SQUAD))
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(DataNotFoundError, match=f"pass --data DIR or set {ENV}"):
        main(["squad", "--raw", str(raw)])
    monkeypatch.setenv(ENV, str(tmp_path / "env-data"))
    main(["squad", "--raw", str(raw)])
    assert len(jsonl(tmp_path / "env-data" / "qa" / "squad-v1.1-dev" / "passages.jsonl")) == 3


def test_missing_raw_file_names_the_download(tmp_path):
    with pytest.raises(DataNotFoundError, match="dev-v1.1.json is missing.*rajpurkar.github.io/SQuAD-explorer"):
        build("squad", tmp_path / "dev-v1.1.json", tmp_path / "data")
    with pytest.raises(SystemExit):
        build("squad", tmp_path / "dev-v1.1.json", tmp_path / "data", "--clips", str(tmp_path))
