"""A small real HTTP server speaking the OpenAI chat-completions API, for tests.

It records every request and answers by the requested model name: `ok` streams a reply,
`escapes` streams one holding terminal escape sequences, `slow` stalls past the client's
timeout, `malformed` sends a body that is not a valid stream, `stall` sends one token and then
stalls mid-stream, `ponder` sends one token and thinks for `PONDER_SECONDS` (or until `stop_pondering()`) before the rest,
`sse_error` sends one token and then an SSE error event, and any request with the key `bad-key`
gets a 401.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PONDER_SECONDS = 20
REPLY_TOKENS = ["The first Americans ", "went to space ", "with Project Mercury [1]."]
# A hostile reply: OSC 52 (write the clipboard) with its ESC in one token and the rest in the
# next, a title change, and a one-character CSI (U+009B) clearing the screen.
ESCAPE_TOKENS = ["Rivers \x1b", "]52;c;ZXZpbA==\x07 flow \x1b]0;pwned\x07", " to the sea \x9b2J."]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") == "Bearer bad-key":
            return self._json(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
        model = body.get("model")
        if model == "slow":
            time.sleep(3)
            return self._json(200, {})
        if model == "malformed":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"data: {this is not json}\n\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        tokens = ESCAPE_TOKENS if model == "escapes" else REPLY_TOKENS
        for token in tokens[:1] if model in ("stall", "sse_error") else tokens:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if model == "ponder" and token == tokens[0]:
                self.server.stop_pondering.wait(PONDER_SECONDS)
        if model == "stall":
            time.sleep(3)
            return
        if model == "sse_error":
            self.wfile.write(b'data: {"error": {"message": "the model crashed", "type": "server_error"}}\n\n')
            return
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OpenAIStub:
    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = []
        self.server.stop_pondering = threading.Event()  # set: `ponder` answers go on at once
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    def stop_pondering(self) -> None:
        self.server.stop_pondering.set()

    def __exit__(self, *exc):
        self.stop_pondering()
        self.server.shutdown()
        self.server.server_close()
