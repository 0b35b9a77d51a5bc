"""`seal-rag serve`: the ask pipeline behind HTTP, and a browser page that talks to it.

    GET  /            the page (microphone, file picker, typed question; no CDN, works offline)
    GET  /healthz     200 JSON: the model that answers and the index's size (503 if the index cannot be read)
    POST /v1/ask      audio as the body (any container `seal-rag ask` reads) or a multipart field
                      `audio`, or JSON {"text": "..."}; query parameters `k` and `mode`.
                      JSON back; with `Accept: text/event-stream` the answer streams, sources first.
    GET  /docs        OpenAPI documentation (Swagger UI from its CDN; /openapi.json offline)

Models load once. At most `max_concurrent` questions are in flight; past that a request gets 503
with Retry-After at once instead of waiting in an unbounded queue. A persistent index is held
under seal-rag's shared lock while the server runs, so an ingest into it is refused with a clear
error instead of corrupting it (serve a Chroma server to ingest while serving: the server looks
for new writes every `follow_seconds` and takes them in, phonetic index and keyword tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import anyio
# FastAPI reads the endpoints' annotations at run time, so these are module-level imports.
from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .answer import Answer
from .retrieve import Retriever, index_keyword_reranker
from .errors import AudioError, AudioTooLongError, NotAudioError, SealError, StoreError
from .safe_text import for_terminal, one_line
from .store import DEFAULT_COLLECTION, DEFAULT_PORT

MAX_K = 100
RETRY_AFTER_SECONDS = 1
# The request body is read in chunks of this size, so an oversized upload is cut off early.
READ_CHUNK = 64 * 1024
UPLOADS_PER_SLOT = 2  # uploads read at once, per question slot: each buffers up to max_upload_bytes
ANSWER_THREADS_PER_SLOT = 2  # threads reading chat models' answers at once, per question slot (see create_app)
UPLOAD_SECONDS = 120  # a whole body must arrive within this (25 MB at about 200 kB/s), however it trickles
MAX_QUESTION_CHARS = 4_000  # a typed question; the tokenizer reads all of it (a minute for megabytes) to keep 256 pieces
_END = object()  # what `next` gives back once an answer's tokens end
FOLLOW_STOP_SECONDS = 5  # how long a stopping server waits for a look at the index to end
# The page loads only its own script and style, so it may forbid everything else: no injected
# script would run, and no other site may frame it (a framed page could be clicked into recording).
# /docs loads Swagger UI from a CDN with an inline script, so only the page gets this policy.
PAGE_POLICY = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


@dataclass
class ServeSettings:
    """Everything `seal-rag serve` is told; see its `--help`."""

    db: Path | None = None
    chroma_host: str | None = None
    chroma_port: int = DEFAULT_PORT
    collection: str = DEFAULT_COLLECTION
    model_dir: Path | None = None
    use_tuned: bool = True
    llm: str = "none"  # shown by /healthz; the answerer itself is handed to `AskService`
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_concurrent: int = 4
    max_upload_bytes: int = 25 * 1024 * 1024
    keywords: bool = True  # re-rank the speech ranking by keyword spotting (`keyword_rerank`)
    follow_seconds: float = 10.0  # over a Chroma server: how often to look for other processes' writes
    stall_seconds: float = 30.0  # an upload that sends nothing for this long gets 408, freeing what it buffered


class Busy(Exception):
    """Every slot is taken: the client should retry shortly."""


class Slots:
    """A bound on questions in flight that refuses, instead of queueing, when it is full."""

    def __init__(self, size: int):
        self.size, self.used, self.lock = size, 0, threading.Lock()

    def take(self) -> None:
        with self.lock:
            if self.used >= self.size:
                raise Busy
            self.used += 1

    def give_back(self) -> None:
        with self.lock:
            self.used -= 1


class AskService:
    """The models and the index, loaded once, and one question answered at a time per call."""

    def __init__(self, settings: ServeSettings, answerer=None):
        from .kb_tuning import choose_model
        from .store import SealIndex

        self.settings = settings
        self.choice = choose_model(settings.model_dir, settings.db, settings.chroma_host, settings.chroma_port,
                                   settings.collection, settings.use_tuned)
        self.model = self.choice.model
        self.index = SealIndex.open(self.model, settings.db, settings.chroma_host, settings.chroma_port, settings.collection)
        if self.index.phonetic is not None:
            self.index.phonetic.warm()  # a server answers many questions: map the postings in once, not query by query
        self._state = self._index_state()  # what `keywords` were made from
        self.keywords = index_keyword_reranker(self.model, self.index, show_progress=True) if settings.keywords else None
        self.answerer = answerer  # an `llm.ChatAnswerer`, or None for the extractive answer
        self._transcriber = None
        self._transcriber_lock = threading.Lock()
        self._follower: SealIndex | None = None  # the index again, with a phonetic index handle of its own: see `follow`
        self._last_look = (self.index.change_token(), self.index.count()) if self.index.phonetic is not None else None
        self._stop_following = threading.Event()

    def follow(self) -> bool:
        """Take in what other processes wrote to a shared Chroma server since the last look: the
        phonetic index mended from Chroma (`SealIndex.sync`), then the keyword tables made anew.
        Returns whether anything changed.

        Nothing is done while the index is still moving (a remote ingest moves Chroma's change
        token with every batch): only once two looks in a row find the same token and count.
        The mending writes through a second handle on the phonetic index, so the questions being
        answered keep reading the old rows until its new manifest is read (`PhoneticIndex.refresh`);
        the new keyword tables replace the old ones in one assignment.
        """
        from .store import SealIndex

        if self.index.phonetic is None:
            return False
        look = (self.index.change_token(), self.index.count())
        if look != self._last_look:
            self._last_look = look
            return False
        if self._follower is None:
            self._follower = SealIndex.for_collection(self.index.collection, self.model, self.index.phonetic.folder, self.index.where)
        else:
            self._follower.sync(self.model)
        state = self._index_state()
        if state == self._state:
            return False
        if self.keywords is not None:
            self.keywords = index_keyword_reranker(self.model, self.index)
        self._state = state
        return True

    def _index_state(self) -> dict | None:
        """The serving index's state as keyword tables are stamped with it (its phonetic index re-read first)."""
        from . import keyword_tables

        return keyword_tables.stamp(self.index) if self.index.phonetic is not None else None

    @contextlib.contextmanager
    def following(self):
        """A context in which, over a Chroma server, a thread calls `follow` every `follow_seconds`
        (a persistent index is held under the lock while serving: nothing else writes to it)."""
        if not self.settings.chroma_host or self.index.phonetic is None:
            yield
            return
        self._stop_following.clear()
        thread = threading.Thread(target=self._follow_until_stopped, name="seal-rag-follow", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop_following.set()
            thread.join(FOLLOW_STOP_SECONDS)  # a rebuild under way is not waited for: the thread is a daemon

    def _follow_until_stopped(self) -> None:
        while not self._stop_following.wait(self.settings.follow_seconds):
            try:
                self.follow()
            except Exception as error:  # noqa: BLE001 - e.g. the Chroma server away for a moment: look again next time
                print(for_terminal(f"seal-rag serve: the index's new writes were not taken in ({type(error).__name__}: {error}); "
                                   f"looking again in {self.settings.follow_seconds:g} s"), file=sys.stderr, flush=True)

    @property
    def transcriber(self):
        """One faster-whisper model shared by every request, made on first need."""
        with self._transcriber_lock:
            if self._transcriber is None:
                from .cascade import Transcriber

                self._transcriber = Transcriber()
            return self._transcriber

    def health(self) -> dict:
        return {"status": "ok", "model": {**self.choice.as_dict(), "fingerprint": self.model.fingerprint}, "index": {"chunks": self.index.count(),
                "collection": self.settings.collection}, "llm": self.settings.llm,
                "max_seconds": self.model.config.max_seconds}

    def ask_audio(self, audio: bytes, name: str, k: int, mode: str) -> tuple[dict, Answer]:
        """Retrieve for a spoken question: the response body, and the answer's token stream (or None)."""
        from .audio import load_audio

        start = time.perf_counter()
        problems: list[str] = []
        clip = load_audio(audio, max_seconds=self.model.config.max_seconds, problems=problems)
        decode = time.perf_counter() - start
        needs_transcript = bool(self.answerer and self.answerer.needs_transcript)
        retriever = Retriever(self.model, self.index, mode, self.transcriber if mode != "speech" or needs_transcript else None,
                              self.keywords)
        found = retriever.retrieve_clip(clip, k, want_transcript=needs_transcript)
        question = {"kind": "audio", "name": name, "seconds": round(clip.size / 16000, 3)}
        body = self._body(question, mode, found.hits, found.transcript, {"decode": decode, **found.timings})
        body["warnings"] = problems  # the clip's quality problems, for the client that sent it
        if self.answerer is None:
            return body, self._extractive(body, found.query_vector, found.hits)
        return body, Answer.generated(self.answerer.stream(found.hits, found.transcript, None if needs_transcript else clip))

    def ask_text(self, text: str, k: int) -> tuple[dict, Answer]:
        """Retrieve for a typed question with the text tower."""
        found = Retriever(self.model, self.index).retrieve_text(text, k)
        body = self._body({"kind": "text", "text": text}, "text", found.hits, None, found.timings)
        if self.answerer is None or not self.answerer.needs_transcript:  # a speech LLM hears audio; a typed question has none
            return body, self._extractive(body, found.query_vector, found.hits)
        return body, Answer.generated(self.answerer.stream(found.hits, text, None))

    def _body(self, question: dict, mode: str, hits, transcript: str | None, timings: dict) -> dict:
        return {"question": question, "mode": mode, "transcript": transcript, "answer": None, "answer_kind": None,
                "error": None, "warnings": [], "hits": [hit.as_row() for hit in hits], "model": self.choice.as_dict(),
                "timings": {stage: round(seconds, 4) for stage, seconds in timings.items()}}

    def _extractive(self, body: dict, vector, hits) -> Answer:
        answer = Answer.extractive(self.model, vector, hits)
        body.update(answer=answer.text, answer_kind=answer.kind)
        body["timings"]["answer"] = round(answer.seconds, 4)
        return answer


def _status(error: SealError) -> int:
    """Which HTTP status a project error maps to: the client's fault is a 4xx, never a 500."""
    if isinstance(error, AudioTooLongError):
        return 413
    if isinstance(error, NotAudioError):
        return 415
    if isinstance(error, AudioError):
        return 422
    if isinstance(error, StoreError):
        return 503
    return 400


class SafetyHeaders:
    """Headers every response gets: browsers take a body for its declared type only (a passage
    echoed in JSON is never sniffed as HTML), no page of another site learns the URL it came from,
    and answers (the knowledge base's passages, maybe behind an API key) are kept by no cache;
    the page also gets `PAGE_POLICY`. Static files keep their own caching (ETag)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
                if path == "/":
                    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: ServeSettings, service: AskService | None = None, on_ready=None):
    """The FastAPI application. `service` defaults to loading the models and index now;
    `on_ready()` is called once the server listens."""
    service = service or AskService(settings)
    slots = Slots(settings.max_concurrent)
    # Bodies are read before a question slot is taken; without their own bound, clients that send
    # slowly (or stop) could make the server buffer any number of 25 MB uploads.
    uploads = Slots(UPLOADS_PER_SLOT * settings.max_concurrent)
    # A chat model's answer is read in a thread that waits while the model thinks. In anyio's
    # shared pool (40 threads) forty slow answers took every thread: questions, /healthz and the
    # page all hung. They get threads of their own; answers past this many wait for one.
    answer_threads = anyio.CapacityLimiter(ANSWER_THREADS_PER_SLOT * settings.max_concurrent)

    async def iterate_answer(tokens):
        tokens = iter(tokens)
        while (token := await anyio.to_thread.run_sync(next, tokens, _END, limiter=answer_threads)) is not _END:
            yield token
    web = resources.files("seal_rag") / "web"
    @contextlib.asynccontextmanager
    async def lifespan(app):
        with service.following():
            if on_ready:
                on_ready()
            yield

    app = FastAPI(title="seal-rag", description="Ask a knowledge base a question by voice.", version="0.1.0",
                  lifespan=lifespan)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"])
    app.add_middleware(SafetyHeaders)
    app.mount("/static", StaticFiles(directory=str(web)), name="static")
    app.state.slots = slots

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request, error: RequestValidationError) -> JSONResponse:
        # The README's promise for every 4xx: {"error": "one line"}, not FastAPI's list of fields.
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        message = " ".join(str(first.get("msg", "is not valid")).split())[:200]
        return JSONResponse({"error": f"{where}: {message}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def no_such_route(request, error: StarletteHTTPException) -> JSONResponse:
        # A wrong path or method (404, 405) in the same {"error": "one line"} as every other 4xx,
        # not Starlette's {"detail": ...}, and saying where the API is.
        # The path is the client's: shown escaped and cut short, as any untrusted text.
        message = f"{one_line(request.method, 20)} {one_line(request.url.path, 200)}: {error.detail}"
        if error.status_code in (404, 405):
            message += "; the API is POST /v1/ask and GET /healthz (docs at /docs)"
        return problem(error.status_code, message, error.headers)

    def problem(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def authorised(request: Request) -> bool:
        if not settings.api_key:
            return True
        given = request.headers.get("x-api-key")
        if not given:  # an auth scheme's name is case-insensitive (RFC 9110): "bearer KEY" too
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            given = given.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(given.encode(), settings.api_key.encode())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((web / "index.html").read_text())

    @app.get("/healthz", responses={503: {"description": "the index cannot be read (a Chroma server gone)"}})
    def healthz():
        """The model that answers, the index's size, and whether /v1/ask needs an API key."""
        try:
            return {**service.health(), "auth": bool(settings.api_key)}
        except SealError as error:  # a Chroma server gone away: unhealthy (503), not a traceback
            return problem(503, str(error))

    @app.post("/v1/ask")
    async def ask(request: Request, k: int = Query(5, ge=1, le=MAX_K), mode: Literal["speech", "cascade", "hybrid"] = "speech"):
        """Answer one question: audio (raw body or multipart `audio`) or JSON `{"text": ...}`."""
        if not authorised(request):
            return problem(401, "missing or wrong API key: send it as `Authorization: Bearer KEY` or `X-API-Key`",
                           {"WWW-Authenticate": "Bearer"})
        try:
            uploads.take()
        except Busy:
            return problem(503, f"busy: {uploads.size} uploads are being read; retry shortly",
                           {"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            question = await _read_question(request, settings.max_upload_bytes, settings.stall_seconds)
        finally:
            uploads.give_back()
        if isinstance(question, JSONResponse):
            return question
        try:  # the slot bounds retrieval, the part that uses the CPU; an LLM's answer streams outside it
            slots.take()
        except Busy:
            return problem(503, f"busy: {settings.max_concurrent} questions are in flight; retry shortly",
                           {"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            if question[0] == "text":
                body, answer = await run_in_threadpool(service.ask_text, question[1], k)
            else:
                body, answer = await run_in_threadpool(service.ask_audio, question[1], question[2], k, mode)
        except SealError as error:
            return problem(_status(error), str(error))
        finally:
            slots.give_back()
        if "text/event-stream" in request.headers.get("accept", ""):
            events = _events(body, answer, iterate_answer)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-store"})
        if answer.kind == "llm":
            await _drain(body, answer, iterate_answer)
        return body

    return app


async def _read_question(request, limit: int, stall_seconds: float):
    """("text", str) or ("audio", bytes, name) from the request, or a 4xx response."""
    def problem(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return problem(413, f"upload of {int(declared):,} bytes is over the limit of {limit:,}: send a shorter clip")
    body = bytearray()
    chunks = request.stream().__aiter__()
    deadline = time.monotonic() + UPLOAD_SECONDS
    try:
        while True:
            try:  # a stalled client, and one that sends a byte now and then, both free their slot
                chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, min(stall_seconds, deadline - time.monotonic())))
            except StopAsyncIteration:
                break
            body += chunk
            if len(body) > limit:
                return problem(413, f"upload is over the limit of {limit:,} bytes: send a shorter clip")
    except ClientDisconnect:  # nobody is left to read the answer; not a server error to log
        return problem(400, "the client closed the connection before the upload ended")
    except asyncio.TimeoutError:
        if time.monotonic() >= deadline:
            return problem(408, f"the upload took over {UPLOAD_SECONDS} s: send it again over a faster connection")
        return problem(408, f"the upload stalled: nothing arrived for {stall_seconds:g} s; send it again")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            text = json.loads(body).get("text")
        except (ValueError, AttributeError, RecursionError):  # RecursionError: arrays nested thousands deep
            text = None
        if not isinstance(text, str) or not text.strip():
            return problem(422, 'a JSON body must be {"text": "your question"} with a non-empty question')
        if len(text.strip()) > MAX_QUESTION_CHARS:
            return problem(413, f"the question is {len(text.strip()):,} characters, over the {MAX_QUESTION_CHARS:,} "
                                "a question may have here: shorten it (the text tower reads about its first 1,000)")
        return "text", text.strip()
    if kind == "multipart/form-data":
        async def replay():
            yield bytes(body)

        try:
            form = await MultiPartParser(request.headers, replay(), max_files=1, max_fields=10).parse()
        except MultiPartException as error:
            return problem(400, f"malformed multipart body ({error.message}): send the clip in a field named `audio`")
        files = [value for _, value in form.multi_items() if not isinstance(value, str)]
        upload = form.get("audio") if not isinstance(form.get("audio"), (str, type(None))) else None
        upload = upload or (files[0] if len(files) == 1 else None)  # a lone file under another name is meant too
        if upload is None and _boundary_end(request.headers.get("content-type", "")) not in body:
            return problem(400, "the multipart body ends before its closing boundary: send the whole upload again")
        if upload is None:
            return problem(422, "no file field named `audio` in the form: send the clip as `audio`")
        return "audio", await upload.read(), Path(upload.filename or "upload").name
    if not body:
        return problem(422, 'empty request: send audio as the body, a multipart field `audio`, or JSON {"text": ...}')
    if body.lstrip().startswith(b"{") and kind != "application/octet-stream":  # e.g. `curl -d '{...}'` alone
        return problem(415, "the body looks like JSON but its Content-Type is not application/json: "
                            "send it with `Content-Type: application/json`")
    return "audio", bytes(body), "body"


def _boundary_end(content_type: str) -> bytes:
    """The line that closes a multipart body (`--boundary--`), from its Content-Type."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            return b"--" + value.strip('"').encode("latin-1", "replace") + b"--"
    return b"--"


async def _drain(body: dict, answer: Answer, iterate) -> None:
    """Collect an LLM answer into `body`; a failure keeps the sources and says why in `error`."""
    async for _ in iterate(answer.tokens()):
        pass
    body.update(answer=answer.text, answer_kind=answer.kind, error=answer.error)
    body["timings"]["generate"] = round(answer.seconds, 4)


async def _events(body: dict, answer: Answer, iterate):
    """Server-sent events: `sources` (the body without its answer), `token`s, then `done` or `error`."""

    def event(name: str, data) -> bytes:
        # ASCII only: U+2028 and U+2029 end a line for JavaScript's regular expressions, as a client may read events with.
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    yield event("sources", {key: value for key, value in body.items() if key not in ("answer", "error")})
    if answer.kind == "extractive":
        yield event("token", answer.text)
    else:
        async for token in iterate(answer.tokens()):
            yield event("token", token)
        if answer.error:
            yield event("error", {"error": answer.error})
        body.update(answer=answer.text, answer_kind=answer.kind)
        body["timings"]["generate"] = round(answer.seconds, 4)
    yield event("done", {"answer": body["answer"], "answer_kind": body["answer_kind"], "timings": body["timings"]})


def run(settings: ServeSettings, host: str, port: int, answerer=None, on_ready=None) -> None:
    """Load everything, then serve until interrupted. `on_ready(url)` is called once it listens."""
    import uvicorn

    url = f"http://{host}:{port}"
    app = create_app(settings, AskService(settings, answerer), on_ready and (lambda: on_ready(url)))
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)

