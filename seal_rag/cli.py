"""The `seal-rag` command: ingest a folder, ask it questions out loud.

    seal-rag ingest docs/ [--db PATH | --chroma-host HOST --chroma-port PORT]
    seal-rag ask question.wav [more.wav ...] [--llm openai:MODEL] [--json] [--timings] [--no-tuned]
    seal-rag adapt [--db PATH | --chroma-host HOST --chroma-port PORT] [--steps N] [--max-sentences N]
    seal-rag serve [--db PATH | --chroma-host HOST --chroma-port PORT] [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from .arguments import check_ask_options, check_index_options, check_ingest_options
from .config import ADAPT_MAX_SENTENCES, ADAPT_TAKES
from .errors import SealError
from .safe_text import for_terminal
from .stopping import Terminated, terminate_as_interrupt

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Ask a knowledge base a question by voice.")

DbOption = Annotated[Optional[Path], typer.Option("--db", help="Persistent Chroma directory [default: ./.seal_rag]")]
HostOption = Annotated[Optional[str], typer.Option("--chroma-host", help="Use a Chroma server instead of --db")]
PortOption = Annotated[int, typer.Option("--chroma-port", help="Port of the Chroma server")]
ModelOption = Annotated[Optional[Path], typer.Option("--model", help="A seal-rag model directory [default: shipped]")]
CollectionOption = Annotated[str, typer.Option("--collection", help="Chroma collection name")]
MIC_COMMAND = ["sox", "-q", "-d", "-r", "16000", "-c", "1", "-b", "16", "-t", "wav", "-"]


def say(kind: str, message: object) -> None:
    """One `error:` or `warning:` line on stderr; file names and reasons in it may hold escapes."""
    typer.echo(f"{kind}: {for_terminal(message)}", err=True)


def fail(message: str, code: int = 1) -> None:
    say("error", message)
    raise typer.Exit(code)


def _echo_warnings(load, *args):
    """Call `load`, printing seal-rag's own warnings (experimental model, stale tuned model) on stderr."""
    from .embedding import UntrainedModelWarning
    from .kb_tuning import StaleTuningWarning

    ours = (UntrainedModelWarning, StaleTuningWarning)
    with warnings.catch_warnings(record=True) as caught:
        for category in ours:
            warnings.simplefilter("always", category)
        result = load(*args)
    for warning in caught:
        if issubclass(warning.category, ours):
            say("warning", warning.message)
    return result


@contextlib.contextmanager
def index_lock(db: Path | None, host: str | None, exclusive: bool):
    from .store import db_lock

    if host:  # a server serialises access itself
        yield
    else:
        with db_lock(db, exclusive):
            yield


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of .txt, .md, .html, .pdf and .jsonl files")],
    db: DbOption = None,
    chroma_host: HostOption = None,
    chroma_port: PortOption = 8000,
    collection: CollectionOption = "seal_rag",
    model_dir: ModelOption = None,
    chunk_chars: Annotated[int, typer.Option(help="Largest chunk, in characters")] = 1000,
    overlap_chars: Annotated[int, typer.Option(help="Overlap between chunks, in characters")] = 150,
    prune: Annotated[bool, typer.Option("--prune", help="Delete chunks of files that no longer exist")] = False,
    max_file_mb: Annotated[float, typer.Option(help="Refuse larger files")] = 64,
    follow_links: Annotated[bool, typer.Option("--follow-links", help="Also follow symbolic links that lead out of the folder")] = False,
) -> None:
    """Index a folder: new and changed files are embedded; unchanged ones cost nothing."""
    from .ingest import documents_in, ingest_folder
    from .store import DEFAULT_DB, SealIndex, check_index_folder, check_reachable

    check_index_options(collection, chroma_port)
    check_ingest_options(chunk_chars, overlap_chars, max_file_mb)
    documents_in(folder, follow_links)  # a wrong or empty folder is named before seconds of model loading
    if chroma_host:
        check_reachable(host=chroma_host, port=chroma_port)
    else:
        check_index_folder(Path(db or DEFAULT_DB))  # so is a --db that cannot become an index
    os.umask(0o077)  # everything the index writes, now or later, is its owner's alone
    from .embedding import SpeechEmbedding

    model = _echo_warnings(SpeechEmbedding.from_pretrained, model_dir)
    with index_lock(db, chroma_host, exclusive=True):
        index = SealIndex.open(model, db, chroma_host, chroma_port, collection, create=True)
        try:
            with terminate_as_interrupt():
                summary = ingest_folder(model, folder, index, chunk_chars, overlap_chars, prune, max_file_mb,
                                        follow_links=follow_links)
        except (KeyboardInterrupt, Terminated) as stop:
            fail(f"interrupted: {index.count()} chunks are stored and usable; run the same command again to finish",
                 143 if isinstance(stop, Terminated) else 130)
    for skipped in summary.skipped:
        say("warning", f"skipped {skipped.path}: {skipped.reason}")
    for skipped in summary.records_skipped:  # the rest of the file is indexed
        say("warning", f"skipped a record of {skipped.path}: {skipped.reason}")
    records = f", {len(summary.records_skipped)} records skipped" if summary.records_skipped else ""
    typer.echo(
        f"{summary.files} files: {summary.added} chunks added, {summary.deleted} replaced, {summary.pruned} pruned, "
        f"{len(summary.skipped)} files skipped{records}; the index holds {summary.total} chunks"
    )
    if summary.skipped or summary.records_skipped:
        raise typer.Exit(2)  # like grep: the rest was done, but not everything could be read


def _read_sources(audio: list[str], mic: float | None) -> list[tuple[str, object]]:
    if mic:
        try:
            recorded = subprocess.run(MIC_COMMAND + ["trim", "0", str(mic)], capture_output=True, timeout=mic + 10)
        except (OSError, subprocess.TimeoutExpired):
            recorded = None
        if recorded is None or recorded.returncode != 0 or not recorded.stdout:
            fail("could not record from the microphone with sox: check the audio device, or pipe audio in with `-`")
        return [("microphone", recorded.stdout)]
    if not audio:
        fail("no audio given: pass a .wav/.flac/.ogg/.mp3 file, `-` for stdin, or --mic SECONDS")
    if audio.count("-") > 1:
        fail("`-` (stdin) can be given once: stdin holds one clip; pass the others as files")
    return [("stdin", _read_stdin()) if a == "-" else (a, a) for a in audio]


def _read_stdin() -> bytes:
    from .audio import MAX_ENCODED_BYTES

    data = sys.stdin.buffer.read(MAX_ENCODED_BYTES + 1)
    if len(data) > MAX_ENCODED_BYTES:
        fail(f"stdin holds more than {MAX_ENCODED_BYTES // 2**20} MB, more than any question up to the length limit: "
             "pass a file, or trim the audio")
    return data


def _decode_sources(sources: list[tuple[str, object]], max_seconds: float) -> tuple[list[tuple[str, object, float]], bool]:
    """Decode every source to 16 kHz samples: `(name, clip, seconds taken)` for the good ones,
    and whether any failed (each failure is one `error:` line; the others are still answered)."""
    from .audio import load_audio
    from .audio_quality import AudioQualityWarning

    clips, failed = [], False
    for name, source in sources:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught, _decoder_notes(name):
                warnings.simplefilter("always", AudioQualityWarning)
                clips.append((name, load_audio(source, max_seconds=max_seconds), time.perf_counter() - start))
            for warning in caught:
                say("warning", warning.message)
        except SealError as error:
            say("error", error)
            failed = True
    return clips, failed


@contextlib.contextmanager
def _decoder_notes(name: str):
    """libmpg123 (inside libsndfile) writes a line to the process's stderr for each damaged MP3
    frame it skips, unprefixed and outside Python. Catch them at the descriptor while the clip is
    decoded (the CLI decodes before anything else runs), and say it once, as ours."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as notes:
        os.dup2(notes.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            notes.seek(0)
            lines = notes.read().decode(errors="replace").splitlines()
    skipped = sum("libmpg123" in line for line in lines)
    if skipped:
        say("warning", f"{name}: the MP3 decoder skipped damaged data ({skipped} notes from libmpg123); the rest was decoded")
    for line in lines:
        if line.strip() and "libmpg123" not in line:
            say("warning", f"{name}: {line}")


def _max_seconds(model_dir: Path | None) -> float:
    """The longest query the model accepts, read from its config without loading it.

    A tuned model chosen later has its base's config; if a config cannot be read here, the
    model applies its own limit when it embeds the clip.
    """
    from .config import DEFAULT_MODEL, MODELS_DIR, SealConfig

    path = Path(model_dir or MODELS_DIR / DEFAULT_MODEL) / "config.json"
    try:
        return SealConfig.load(path).max_seconds
    except (OSError, SealError, ValueError, TypeError):
        return float("inf")


def _make_answerer(llm: str, audio_format: str, timeout: float):
    if llm == "none":
        return None
    if not llm.startswith("openai:") or len(llm) <= len("openai:"):
        fail(f"--llm must be 'none' or 'openai:MODEL', not {llm!r}")  # serve's check; ask's is check_ask_options
    from .llm import ChatAnswerer

    return ChatAnswerer(llm.split(":", 1)[1], audio_format, timeout)


@app.command()
def ask(
    audio: Annotated[Optional[list[str]], typer.Argument(help="Audio files, or - to read one from stdin")] = None,
    db: DbOption = None,
    chroma_host: HostOption = None,
    chroma_port: PortOption = 8000,
    collection: CollectionOption = "seal_rag",
    model_dir: ModelOption = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="How many passages to retrieve")] = 5,
    mode: Annotated[str, typer.Option(help="speech (SEAL), cascade (ASR then text) or hybrid (both, fused)")] = "speech",
    llm: Annotated[str, typer.Option(help="none, or openai:MODEL via OPENAI_BASE_URL [env SEAL_RAG_LLM]")] = "",
    llm_audio_format: Annotated[str, typer.Option(help="none (send transcript), input_audio or audio_url")] = "none",
    llm_timeout: Annotated[float, typer.Option(help="Seconds to wait for the chat model")] = 60.0,
    mic: Annotated[Optional[float], typer.Option(help="Record this many seconds from the microphone")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")] = False,
    show_timings: Annotated[bool, typer.Option("--timings", help="Print time per stage and the model used")] = False,
    no_tuned: Annotated[bool, typer.Option("--no-tuned", help="Ignore the index's tuned model (seal-rag adapt)")] = False,
    no_keywords: Annotated[bool, typer.Option("--no-keywords", help="Rank by the vector alone: no keyword re-ranking")] = False,
) -> None:
    """Answer spoken questions from the index, then list the sources."""
    from .retrieve import Retriever, index_keyword_reranker
    from .answer import Answer
    from .render import Answered, render_json, render_text
    from .store import SealIndex, check_reachable

    # What is cheap to check is checked before the models load (seconds): a bad option,
    # a mistyped path, a missing index or a silent clip should not make a user wait for its error.
    llm = llm or os.environ.get("SEAL_RAG_LLM", "none")
    check_index_options(collection, chroma_port)
    check_ask_options(k, mode, llm, llm_audio_format, llm_timeout, mic)
    sources = _read_sources(audio or [], mic)
    answerer = _make_answerer(llm, llm_audio_format, llm_timeout)
    check_reachable(db, chroma_host, chroma_port)
    clips, failed = _decode_sources(sources, _max_seconds(model_dir))
    if not clips:
        raise typer.Exit(1)
    from .kb_tuning import choose_model  # imports the models' code: seconds

    start = time.perf_counter()
    choice = _echo_warnings(choose_model, model_dir, db, chroma_host, chroma_port, collection, not no_tuned)
    model = choice.model
    with index_lock(db, chroma_host, exclusive=False):
        index = SealIndex.open(model, db, chroma_host, chroma_port, collection)
        keywords = None if no_keywords or mode == "cascade" else index_keyword_reranker(model, index, show_progress=True)
        load_seconds = time.perf_counter() - start  # the models, and the index's words for re-ranking
        retriever = Retriever(model, index, mode, keywords=keywords)
        for name, clip, decode_seconds in clips:
            try:
                found = retriever.retrieve_clip(clip, k, want_transcript=bool(answerer and answerer.needs_transcript))
            except SealError as error:
                say("error", f"{name}: {error}")
                failed = True
                continue
            except Exception as error:  # noqa: BLE001 - one file's failure must not lose the answers to the rest
                say("error", f"{name}: could not be answered ({type(error).__name__}: {' '.join(str(error).split())[:160]}); "
                             "the other files still are (please report this)")
                failed = True
                continue
            if answerer is None:
                answer = Answer.extractive(model, found.query_vector, found.hits)
            else:
                audio_in = None if answerer.needs_transcript else clip
                answer = Answer.generated(answerer.stream(found.hits, found.transcript, audio_in))
            timings = {"load": load_seconds, "decode": decode_seconds, **found.timings}
            load_seconds = 0.0  # models load once for all files
            result = Answered(name, found.hits, answer, choice, found.transcript, timings)
            failed = (render_json if as_json else render_text)(result, show_timings, len(sources) > 1) or failed
    if failed:
        raise typer.Exit(1)


@app.command()
def adapt(
    db: DbOption = None,
    chroma_host: HostOption = None,
    chroma_port: PortOption = 8000,
    collection: CollectionOption = "seal_rag",
    steps: Annotated[Optional[int], typer.Option(min=1, help="Training steps of the speech head [default: 5 passes over the spoken clips]")] = None,
    max_sentences: Annotated[int, typer.Option(min=2, help="Most sentences to speak (~0.1 s of CPU each)")] = ADAPT_MAX_SENTENCES,
    takes: Annotated[int, typer.Option(min=1, help="Voices each sentence is spoken by (each take costs its speaking and its passes)")] = ADAPT_TAKES,
) -> None:
    """Tune the speech tower to this index's own text, without labels; `ask` then uses it."""
    from .adapt import adapt as adapt_model
    from .errors import ModelMismatchError
    from .kb_tuning import tuned_dir, save_tuned, tuning
    from .store import DEFAULT_DB, SealIndex, check_reachable

    check_index_options(collection, chroma_port)
    check_reachable(db, chroma_host, chroma_port)
    os.umask(0o077)  # the tuned model is written inside the index, as privately

    # The lock covers reading the chunks only: training takes minutes, and ingest and ask
    # stay usable meanwhile. The tuned model is a separate directory, swapped in by a rename.
    with index_lock(db, chroma_host, exclusive=False):
        from .embedding import SpeechEmbedding

        model = _echo_warnings(SpeechEmbedding.from_pretrained, None)  # the shipped model: a tuned model is always made from it
        try:
            index = SealIndex.open(model, db, chroma_host, chroma_port, collection)
        except ModelMismatchError as error:
            # Its usual fix speaks of querying with the other model, which adapt cannot: it only tunes the shipped model.
            raise ModelMismatchError(
                error.problem, "adapt tunes the shipped model only, so it cannot adapt this index; re-ingest your "
                "documents without --model into a new --db (`seal-rag ingest DOCS --db NEW`) and adapt that"
            ) from None
        index.ensure_not_empty()
        texts = index.all_texts()
    target = tuned_dir(db, chroma_host, chroma_port, collection)
    with tuning(target):  # a target that cannot be written fails now, not after the minutes below
        result = adapt_model(model, texts, steps=steps, max_sentences=max_sentences, takes=takes)
        where = f"{chroma_host}:{chroma_port}" if chroma_host else str(db or DEFAULT_DB)
        save_tuned(result, model, target, where, collection)
    typer.echo(
        f"adapted to {result.sentences} spoken clips ({takes} per sentence) of {result.passages} chunks in {result.seconds:.0f} s "
        f"(speaking and encoding {result.speak_seconds:.0f} s, training {result.steps} steps {result.train_seconds:.0f} s); "
        f"`seal-rag ask` now answers with {for_terminal(target)} (--no-tuned to compare)"
    )


@app.command()
def serve(
    db: DbOption = None,
    chroma_host: HostOption = None,
    chroma_port: PortOption = 8000,
    collection: CollectionOption = "seal_rag",
    model_dir: ModelOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; other than loopback needs an API key")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(help="Key clients must send [env SEAL_RAG_API_KEY]")] = None,
    cors_origin: Annotated[Optional[list[str]], typer.Option(help="Allow browser pages from this origin (repeatable); off by default")] = None,
    max_concurrent: Annotated[int, typer.Option(help="Questions in flight at once; past it, 503 with Retry-After. Chat-model answers: twice as many stream at once, the rest wait")] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted")] = 25.0,
    llm: Annotated[str, typer.Option(help="none, or openai:MODEL via OPENAI_BASE_URL [env SEAL_RAG_LLM]")] = "",
    llm_audio_format: Annotated[str, typer.Option(help="none (send transcript), input_audio or audio_url")] = "none",
    llm_timeout: Annotated[float, typer.Option(help="Seconds to wait for the chat model")] = 60.0,
    no_tuned: Annotated[bool, typer.Option("--no-tuned", help="Ignore the index's tuned model (seal-rag adapt)")] = False,
    no_keywords: Annotated[bool, typer.Option("--no-keywords", help="Rank by the vector alone: no keyword re-ranking")] = False,
) -> None:
    """Serve the index over HTTP: POST /v1/ask, a browser page at /, OpenAPI docs at /docs."""
    import socket

    from .serve import ServeSettings, run
    from .store import check_reachable

    from .arguments import check_index_options, check_serve_options

    api_key = api_key or os.environ.get("SEAL_RAG_API_KEY") or None
    llm = llm or os.environ.get("SEAL_RAG_LLM", "none")
    check_index_options(collection, chroma_port)
    check_serve_options(host, port, api_key, max_concurrent, max_upload_mb, llm, llm_audio_format, llm_timeout)
    answerer = _make_answerer(llm, llm_audio_format, llm_timeout)
    check_reachable(db, chroma_host, chroma_port)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:  # a busy port should not cost the user a model load to find out
            probe.bind((host, port))
        except OSError as error:
            fail(f"cannot listen on {host}:{port} ({error.strerror}): choose another --port")
    settings = ServeSettings(db, chroma_host, chroma_port, collection, model_dir, not no_tuned, llm, api_key,
                             cors_origin or [], max_concurrent, int(max_upload_mb * 1024 * 1024), not no_keywords)
    with index_lock(db, chroma_host, exclusive=False):  # held while serving: an ingest is refused, not raced
        run(settings, host, port, answerer, on_ready=lambda url: typer.echo(f"serving {url} (Ctrl-C stops)", err=True))


BENCHMARKS = ("encode", "ask", "accuracy", "latency", "robustness", "scale", "ingest", "serve", "build-data")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def bench(ctx: typer.Context, name: Annotated[str, typer.Argument(help=f"One of: {', '.join(BENCHMARKS)}")]) -> None:
    """Run a benchmark; `seal-rag bench NAME --help` lists its options."""
    import importlib

    if name not in BENCHMARKS:
        fail(f"no benchmark {name!r}: choose one of {', '.join(BENCHMARKS)}")
    importlib.import_module(f"seal_rag.bench.{name.replace('-', '_')}").main(list(ctx.args))


def main() -> None:
    """Console entry point: project errors become one line on stderr and exit code 1."""
    try:
        app()
    except SealError as error:
        say("error", error)
        sys.exit(1)


if __name__ == "__main__":
    main()
