"""`seal-rag serve`: the HTTP API in-process (FastAPI's TestClient) and as a real server process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from .conftest import DEMOS, free_port
from .openai_stub import REPLY_TOKENS, OpenAIStub

GOLD = "Apollo_program_0.txt"  # q5.wav: "What project put the first Americans into space?"


@pytest.fixture(scope="module")
def service(demo_db):
    from seal_rag.serve import AskService, ServeSettings

    return AskService(ServeSettings(db=demo_db))


def start_server(app, port: int):
    """A real uvicorn server for `app` on a thread, listening when this returns: `(server, thread)`."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return server, thread


def client(service, answerer=None, **settings):
    from fastapi.testclient import TestClient

    from seal_rag.serve import ServeSettings, create_app

    service.answerer = answerer
    return TestClient(create_app(ServeSettings(db=service.settings.db, **settings), service))


def events(response) -> list[tuple[str, object]]:
    """The (event, data) pairs of a server-sent-events body, in order."""
    pairs = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        pairs.append((lines["event"], json.loads(lines["data"])))
    return pairs


@pytest.mark.slow
def test_a_spoken_question_as_the_body_finds_its_passage_first(service, demo_question):
    response = client(service).post("/v1/ask?k=3", content=demo_question.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert Path(body["hits"][0]["source"]).name == GOLD
    assert [hit["rank"] for hit in body["hits"]] == [1, 2, 3]
    assert body["question"]["kind"] == "audio" and abs(body["question"]["seconds"] - 3.54) < 0.01
    assert body["answer_kind"] == "extractive" and "Project Mercury" in body["answer"]
    assert body["model"]["name"] == "seal-base-minilm" and body["transcript"] is None  # speech mode: no transcript
    assert {"decode", "features", "encode", "search", "keywords"} <= set(body["timings"])


@pytest.mark.slow
def test_multipart_upload_and_a_typed_question_find_the_same_passage(service, demo_question):
    http = client(service)
    upload = http.post("/v1/ask", files={"audio": ("q5.wav", demo_question.read_bytes(), "audio/wav")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["question"]["name"] == "q5.wav" and Path(upload.json()["hits"][0]["source"]).name == GOLD
    other_name = http.post("/v1/ask", files={"file": ("q5.wav", demo_question.read_bytes(), "audio/wav")})
    assert Path(other_name.json()["hits"][0]["source"]).name == GOLD  # a lone file under another field name
    typed = http.post("/v1/ask", json={"text": "What project put the first Americans into space?"})
    assert typed.status_code == 200, typed.text
    assert typed.json()["question"] == {"kind": "text", "text": "What project put the first Americans into space?"}
    assert Path(typed.json()["hits"][0]["source"]).name == GOLD and typed.json()["mode"] == "text"


@pytest.mark.slow
def test_cascade_mode_returns_the_transcript(service, demo_question):
    body = client(service).post("/v1/ask?mode=cascade&k=1", content=demo_question.read_bytes()).json()
    assert "first americans" in body["transcript"].lower() and "transcribe" in body["timings"]


@pytest.mark.slow
def test_bad_input_is_a_4xx_with_one_line_never_a_500(service, tmp_path):
    http = client(service, max_upload_bytes=200_000)
    silent = io.BytesIO()
    sf.write(silent, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
    cases = {
        "not audio": (http.post("/v1/ask", content=b"this is a note, not a recording"), 415),
        "silence": (http.post("/v1/ask", content=silent.getvalue()), 422),
        "empty": (http.post("/v1/ask", content=b""), 422),
        "too big": (http.post("/v1/ask", content=b"\0" * 300_000), 413),
        "bad k": (http.post("/v1/ask?k=0", content=b"x"), 422),
        "bad mode": (http.post("/v1/ask?mode=loud", content=b"x"), 422),
        "bad json": (http.post("/v1/ask", content=b'{"text": 3}', headers={"Content-Type": "application/json"}), 422),
        "no file": (http.post("/v1/ask", files={"audio": (None, "q.wav")}), 422),  # a text field, not a file
        "deep json": (http.post("/v1/ask", content=b"[" * 100_000 + b"]" * 100_000,  # was a RecursionError, a 500
                                headers={"Content-Type": "application/json"}), 422),
        # A lone surrogate reached the tokenizer (a 500 with a traceback); megabytes of question cost minutes of CPU.
        "surrogate": (http.post("/v1/ask", content=b'{"text": "hi \\ud800 there"}', headers={"Content-Type": "application/json"}), 400),
        "long question": (http.post("/v1/ask", json={"text": "apollo " * 1000}), 413),
        "cut multipart": (http.post("/v1/ask", content=b'--XYZ\r\nContent-Disposition: form-data; name="audio"; filename="q.wav"\r\n'
                                    b"Content-Type: audio/wav\r\n\r\nRIFF", headers={"Content-Type": "multipart/form-data; boundary=XYZ"}), 400),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.status_code, response.text)
        message = response.json()["error"]
        assert message and "\n" not in message, (name, message)
    assert http.post("/v1/ask?k=abc", content=b"x").json()["error"].startswith("k: ")  # names the parameter
    assert "invalid Unicode" in cases["surrogate"][0].json()["error"]
    assert "6,999 characters, over the 4,000" in cases["long question"][0].json()["error"]
    assert "closing boundary" in cases["cut multipart"][0].json()["error"]


@pytest.mark.slow
def test_a_clip_that_sounds_unlike_a_question_is_answered_with_its_warning_in_the_body(service):
    tone = io.BytesIO()
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32), 16000, format="WAV")
    response = client(service).post("/v1/ask", content=tone.getvalue())
    assert response.status_code == 200, response.text
    assert len(response.json()["warnings"]) == 1 and "steady noise or a tone" in response.json()["warnings"][0]


def test_events_are_ascii_so_the_page_reads_a_passage_holding_a_line_separator():
    import asyncio

    from seal_rag.answer import Answer
    from seal_rag.serve import _events

    async def stream():
        body = {"hits": [{"text": "one\u2028two \u00e9"}], "answer": "one\u2028two", "answer_kind": "extractive", "timings": {}}
        return [chunk async for chunk in _events(body, Answer("extractive", "one\u2028two"), None)]

    chunks = asyncio.run(stream())
    assert all(chunk.isascii() for chunk in chunks)
    assert json.loads(chunks[0].decode().split("data: ", 1)[1])["hits"][0]["text"] == "one\u2028two \u00e9"


@pytest.mark.slow
def test_an_upload_that_stalls_gets_408_and_uploads_past_their_bound_get_503(service, demo_question):
    """Bodies are read before a question slot is taken: a client that stops sending must not hold its
    buffer for ever, nor may stalled clients pile up buffers past a bound."""
    from seal_rag.serve import UPLOADS_PER_SLOT, ServeSettings, create_app

    service.answerer = None
    settings = ServeSettings(db=service.settings.db, stall_seconds=2.0, max_concurrent=1)
    port = free_port()
    server, thread = start_server(create_app(settings, service), port)
    try:
        stalled = []
        for _ in range(UPLOADS_PER_SLOT):  # fill every upload slot with a body that stops after 4 bytes
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 1000\r\n\r\nRIFF")
            stalled.append(connection)
        time.sleep(0.5)
        busy = httpx.post(f"http://127.0.0.1:{port}/v1/ask", content=demo_question.read_bytes(), timeout=30)
        assert busy.status_code == 503 and "uploads are being read" in busy.json()["error"]
        for connection in stalled:
            connection.settimeout(10)
            reply = connection.recv(4096).decode()
            assert reply.startswith("HTTP/1.1 408") and "the upload stalled" in reply, reply
            connection.close()
        answered = httpx.post(f"http://127.0.0.1:{port}/v1/ask", content=demo_question.read_bytes(), timeout=120)
        assert answered.status_code == 200 and Path(answered.json()["hits"][0]["source"]).name == GOLD
        assert answered.json()["warnings"] == []
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
def test_slow_chat_model_answers_leave_threads_for_health_and_questions(service, monkeypatch):
    """A chat model's answer is read in a thread while the model thinks: forty slow answers took
    every thread of the shared pool, and /healthz (and every new question) hung until they ended."""
    import threading

    from seal_rag.llm import ChatAnswerer
    from seal_rag.serve import ServeSettings, create_app

    settings = ServeSettings(db=service.settings.db, max_concurrent=16)  # 42 clients: 503s retried
    port = free_port()
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        service.answerer = ChatAnswerer("ponder", timeout=60)
        server, thread = start_server(create_app(settings, service), port)

        def ask() -> None:
            for _ in range(200):  # past the question slots, retry as a client told 503 would
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.post(f"http://127.0.0.1:{port}/v1/ask?k=1", json={"text": "Apollo"}, timeout=60).status_code != 503:
                        return
                time.sleep(1)

        clients = [threading.Thread(target=ask, daemon=True) for _ in range(42)]
        try:
            for client_thread in clients:
                client_thread.start()
            deadline = time.monotonic() + 20
            while len(stub.requests) < 32 and time.monotonic() < deadline:  # 32: the answer threads 16 slots have
                time.sleep(0.1)
            assert len(stub.requests) >= 32, "the answers never reached the chat model: nothing was tested"
            time.sleep(2)  # and before the fix, more answers took the shared pool's last threads
            started = time.monotonic()
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # a ReadTimeout before the fix
            assert health.status_code == 200 and time.monotonic() - started < 5
        finally:
            stub.stop_pondering()  # the answers end; nothing is left running into later tests
            for client_thread in clients:
                client_thread.join(timeout=60)
            server.should_exit = True
            thread.join(timeout=60)
            service.answerer = None


@pytest.mark.slow
def test_the_answer_streams_after_the_sources(service, demo_question):
    response = client(service).post("/v1/ask", content=demo_question.read_bytes(), headers={"Accept": "text/event-stream"})
    assert response.headers["content-type"].startswith("text/event-stream")
    pairs = events(response)
    assert [name for name, _ in pairs] == ["sources", "token", "done"]
    assert Path(pairs[0][1]["hits"][0]["source"]).name == GOLD and "answer" not in pairs[0][1]
    assert pairs[2][1]["answer"] == pairs[1][1] and pairs[2][1]["answer_kind"] == "extractive"


@pytest.mark.slow
def test_a_chat_model_streams_its_answer_and_a_failing_one_keeps_the_sources(service, demo_question, monkeypatch):
    from seal_rag.llm import ChatAnswerer

    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        streamed = client(service, ChatAnswerer("ok")).post(
            "/v1/ask", content=demo_question.read_bytes(), headers={"Accept": "text/event-stream"})
        pairs = events(streamed)
        assert [name for name, _ in pairs] == ["sources", *["token"] * len(REPLY_TOKENS), "done"]
        assert pairs[0][1]["transcript"]  # a text model needs the transcript, so it was made
        assert pairs[-1][1]["answer"] == "".join(REPLY_TOKENS) and pairs[-1][1]["answer_kind"] == "llm"
        prompt = stub.requests[-1]["body"]["messages"][-1]["content"]
        assert "Question: " in prompt and "first americans" in prompt.lower()

        failed = client(service, ChatAnswerer("slow", timeout=1)).post("/v1/ask", content=demo_question.read_bytes())
        assert failed.status_code == 200
        body = failed.json()
        assert Path(body["hits"][0]["source"]).name == GOLD and "did not answer within" in body["error"]


def test_an_api_key_is_required_when_set_and_cors_is_off_unless_configured(service, demo_question):
    locked = client(service, api_key="s3cret")
    assert locked.post("/v1/ask", content=b"x").status_code == 401
    assert locked.post("/v1/ask", content=b"x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.post("/v1/ask", content=b"x", headers={"X-API-Key": "s3cret"}).status_code == 415  # past the key
    assert locked.post("/v1/ask", content=b"x", headers={"Authorization": "bearer s3cret"}).status_code == 415  # any case
    assert locked.post("/v1/ask", content=b"x", headers={"Authorization": "Basic s3cret"}).status_code == 401
    empty_key = {"X-API-Key": "", "Authorization": "Bearer s3cret"}  # an empty header hides nothing
    assert locked.post("/v1/ask", content=b"x", headers=empty_key).status_code == 415
    assert locked.post("/v1/ask", content=b"x").headers["www-authenticate"] == "Bearer"
    assert locked.get("/healthz").json()["auth"] is True
    # `curl -d '{"text": ...}'` without the JSON header sends a form type: the fix is named.
    form = locked.post("/v1/ask", content=b'{"text": "x"}', headers={"X-API-Key": "s3cret",
                                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415 and "Content-Type: application/json" in form.json()["error"]
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client(service).get("/healthz", headers=origin).headers
    allowed = client(service, cors_origins=["https://example.org"]).get("/healthz", headers=origin)
    assert allowed.headers["access-control-allow-origin"] == "https://example.org"


def test_past_the_concurrency_bound_a_request_gets_503_with_retry_after(service, demo_question):
    from fastapi.testclient import TestClient

    from seal_rag.serve import ServeSettings, create_app

    app = create_app(ServeSettings(db=service.settings.db, max_concurrent=1), service)
    app.state.slots.take()  # one question already in flight
    busy = TestClient(app).post("/v1/ask", content=demo_question.read_bytes())
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
    app.state.slots.give_back()


def test_health_page_and_openapi(service):
    http = client(service)
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["index"]["chunks"] == 39 and health["model"]["name"] == "seal-base-minilm"
    page = http.get("/")
    assert page.status_code == 200 and 'id="record"' in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: everything it loads is served here
    assert http.get("/static/app.js").status_code == 200
    assert "/v1/ask" in http.get("/openapi.json").json()["paths"]


# --- The real thing: `seal-rag serve` as a process -------------------------------------------

def seal_rag(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seal_rag.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def server(demo_db):
    """`seal-rag serve` on a free port, ready once /healthz answers."""
    port = free_port()
    process = seal_rag("serve", "--db", str(demo_db), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log = process.stderr.read()
    assert "Traceback" not in log, log  # whatever the tests sent, the server logged no traceback


def test_a_client_that_hangs_up_mid_upload_leaves_the_server_answering(server, demo_question):
    import socket
    from urllib.parse import urlparse

    address = urlparse(server)
    for _ in range(3):  # each was a ClientDisconnect traceback in the server's log (checked when it stops)
        with socket.create_connection((address.hostname, address.port)) as connection:
            connection.sendall(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                               b"Content-Length: 100000\r\n\r\n" + b"\0" * 5000)
    response = httpx.post(f"{server}/v1/ask", content=demo_question.read_bytes(), timeout=120)
    assert response.status_code == 200 and response.json()["hits"]


def test_responses_are_not_sniffed_cached_or_framed_and_the_page_runs_only_its_own_script(server):
    """Answers echo untrusted passages: a browser must not read them as HTML, nor a cache keep them;
    the page forbids scripts from anywhere but itself and being framed by another site."""
    page = httpx.get(server, timeout=30)
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    answer = httpx.post(f"{server}/v1/ask?k=1", json={"text": "<script>alert(1)</script> Apollo"}, timeout=60)
    refused = httpx.post(f"{server}/v1/ask", content=b"<html><script>alert(1)</script>", timeout=60)
    streamed = httpx.post(f"{server}/v1/ask?k=1", json={"text": "Apollo"}, headers={"Accept": "text/event-stream"}, timeout=60)
    for response in (page, answer, refused, streamed, httpx.get(f"{server}/healthz", timeout=30)):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["cache-control"] == "no-store" and response.headers["referrer-policy"] == "no-referrer"
    assert answer.status_code == 200 and refused.status_code == 415
    script = httpx.get(f"{server}/static/app.js", timeout=30)  # static files keep their ETag caching
    assert script.headers["x-content-type-options"] == "nosniff" and "cache-control" not in script.headers


def test_a_wrong_path_or_method_is_a_one_line_error_too(server):
    """The README's {"error": "one line"} holds for every 4xx, not only /v1/ask's own."""
    cases = {"GET /v1/ask": (httpx.get(f"{server}/v1/ask", timeout=30), 405),
             "POST /ask": (httpx.post(f"{server}/ask", content=b"x", timeout=30), 404),
             "missing static": (httpx.get(f"{server}/static/nothing.js", timeout=30), 404)}
    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert "POST /v1/ask" in response.json()["error"] and "detail" not in response.json(), name
    assert cases["GET /v1/ask"][0].headers["allow"] == "POST"
    hostile = httpx.get(f"{server}/%1b%5b2J%c2%9b", timeout=30).json()["error"]  # the path is the client's
    assert r"\x1b" in hostile and r"\x9b" in hostile and not any(c in hostile for c in "\x1b\x9b")


@pytest.mark.slow
def test_the_served_index_answers_a_spoken_question_over_http(server, demo_question, demo_db):
    response = httpx.post(f"{server}/v1/ask", content=demo_question.read_bytes(), timeout=120)
    assert response.status_code == 200 and Path(response.json()["hits"][0]["source"]).name == GOLD
    assert httpx.post(f"{server}/v1/ask", content=b"not audio", timeout=60).status_code == 415
    # While it serves, the index is held: an ingest into it is refused with one line, not raced.
    ingest = subprocess.run([sys.executable, "-m", "seal_rag.cli", "ingest", str(DEMOS / "kb"), "--db", str(demo_db)],
                            capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 1 and "another seal-rag process is using" in ingest.stderr, ingest.stderr


def test_serve_refuses_bad_settings_before_loading_anything(demo_db):
    env = {k: v for k, v in os.environ.items() if k != "SEAL_RAG_API_KEY"}
    exposed = seal_rag("serve", "--db", str(demo_db), "--host", "0.0.0.0", env=env)
    assert exposed.wait(timeout=60) == 1 and "--api-key" in exposed.stderr.read()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = seal_rag("serve", "--db", str(demo_db), "--port", str(taken.getsockname()[1]))
        assert busy.wait(timeout=60) == 1 and "choose another --port" in busy.stderr.read()
    for bad in (["--collection", "../evil"], ["--max-concurrent", "0"], ["--port", "70000"], ["--llm", "gpt"]):
        refused = seal_rag("serve", "--db", str(demo_db), *bad)
        assert refused.wait(timeout=60) == 1 and refused.stderr.read().startswith("error: "), bad
    missing = seal_rag("serve", "--db", "/nonexistent/index")
    assert missing.wait(timeout=60) == 1 and "no index at" in missing.stderr.read()


# --- The page in a real browser -------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def fake_microphone(tmp_path, demo_question) -> Path:
    """The spoken question as Chromium's fake microphone plays it: a little silence around it,
    since the browser loops the file and the recording starts and stops on clicks."""
    clip, rate = sf.read(demo_question, dtype="float32")
    pause = np.zeros(int(0.3 * rate), dtype=np.float32)
    path = tmp_path / "microphone.wav"
    sf.write(path, np.concatenate([pause, clip, pause, pause, pause]), rate, subtype="PCM_16")
    return path


@pytest.mark.slow
def test_the_page_records_the_microphone_and_shows_the_right_passage_first(server, fake_microphone):
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "apt-get install chromium (make setup does)"
    seconds = sf.info(fake_microphone).duration
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_microphone}"])
        page = browser.new_page()
        page.goto(server)
        expect(page.locator("#about")).to_contain_text("39 passages indexed")
        record = page.get_by_role("button", name="Start recording")
        record.focus()
        page.keyboard.press("Enter")  # keyboard, as a user without a mouse would
        expect(page.locator("#record")).to_have_attribute("aria-pressed", "true")
        page.wait_for_timeout(seconds * 1000 * 0.8)
        page.get_by_role("button", name="Stop and ask").click()
        expect(page.locator("#status")).to_have_text("Done.", timeout=120_000)
        first = page.locator("#sources li").first
        expect(first.locator(".source")).to_contain_text(GOLD)
        expect(page.locator("#answer")).to_contain_text("Project Mercury")

        page.get_by_label("Typed question").fill("What is the second most abundant element?")
        page.get_by_role("button", name="Ask", exact=True).click()
        expect(page.locator("#sources li").first.locator(".source")).to_contain_text("Oxygen_0.txt", timeout=60_000)
        browser.close()


@pytest.mark.slow
def test_the_load_test_answers_every_question_and_reports_latency_throughput_and_memory(demo_db, tmp_path):
    from seal_rag.bench import serve as load_test

    questions = [str(DEMOS / "questions" / f"q{i}.wav") for i in (1, 3, 5)]
    load_test.main(["--db", str(demo_db), "--audio", *questions, "--clients", "1", "4", "--requests", "8",
                    "--max-concurrent", "2", "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "serve.json").read_text())
    assert [level["clients"] for level in payload["levels"]] == [1, 4]
    for level in payload["levels"]:
        assert level["answered"] == 8 and level["errors"] == 0, level
        assert 0 < level["p50_ms"] <= level["p95_ms"] and level["throughput_per_s"] > 0
    assert payload["levels"][1]["rejected_503"] > 0  # 4 clients against 2 slots: backpressure, retried
    assert len(payload["server_rss_mb"]) == 3 and min(payload["server_rss_mb"]) > 100
    assert (tmp_path / "serve.md").read_text().count("\n| ") == 3


@pytest.mark.slow
def test_over_a_chroma_server_serve_takes_in_another_machines_edit_while_serving(embedding, chroma_server_process, tmp_path):
    import chromadb
    from fastapi.testclient import TestClient

    from seal_rag.ingest import ingest_folder
    from seal_rag.keyword_rerank import _key
    from seal_rag.serve import AskService, ServeSettings, create_app
    from seal_rag.store import SealIndex

    chroma_process, chroma_server = chroma_server_process
    server = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    other_machine = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server, create=True)
    other_machine.phonetic.folder = tmp_path / "other-machine"  # its own phonetic index, as on another machine
    ingest_folder(embedding, DEMOS / "kb", other_machine, show_progress=False)
    settings = ServeSettings(chroma_host="127.0.0.1", chroma_port=chroma_server, follow_seconds=0.2)
    service = AskService(settings)
    assert service.index.phonetic.folder != other_machine.phonetic.folder
    assert not service.follow() and not service.follow()  # nothing new: nothing rebuilt

    question = {"text": "clove plantations of Zanzibar"}
    text = "Zanzibar's clove plantations shipped spice across the Indian Ocean."
    with TestClient(create_app(settings, service)) as http:
        assert http.post("/v1/ask", json=question).json()["hits"][0]["id"] != "zanzibar-cloves"
        keywords, count = service.keywords, server.get_collection("seal_rag").count()
        other_machine.delete([other_machine.all_ids()[0]])  # an edit that keeps the count
        other_machine.upsert(["zanzibar-cloves"], embedding.embed_texts([text]), [text], [{"source": "spice.txt"}])
        assert server.get_collection("seal_rag").count() == count
        deadline = time.time() + 60  # the delete and the upsert may be taken in one look or two

        def taken_in() -> bool:
            service.index.phonetic.refresh()
            return "zanzibar-cloves" in service.index.phonetic.live_ids() and service.keywords._stored.get(_key(text)) is not None
        while not taken_in() and time.time() < deadline:
            time.sleep(0.2)
        best = http.post("/v1/ask", json=question).json()["hits"][0]
    # The keyword tables were made anew from the index, new passage included.
    assert keywords._stored.get(_key(text)) is None and service.keywords._stored.get(_key(text)) is not None
    assert best["id"] == "zanzibar-cloves"
    exact = float(embedding.embed_texts([text])[0] @ embedding.embed_texts([question["text"]])[0])
    assert best["score"] == pytest.approx(exact, abs=1e-4)  # ranked by both halves: the phonetic row is there
    assert service.index.phonetic.live_ids() == set(service.index.all_ids())
    chroma_process.terminate()
    chroma_process.wait(timeout=30)
    gone = TestClient(create_app(settings, service)).get("/healthz")  # was a 500 and a traceback
    assert gone.status_code == 503 and "lost the Chroma server" in gone.json()["error"], gone.text
