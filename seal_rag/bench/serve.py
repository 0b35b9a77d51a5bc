"""Load test of `seal-rag serve` on loopback: latency, throughput, errors and memory under concurrent clients.

    seal-rag bench serve --db INDEX --audio q1.wav q2.wav ... [--clients 1 4 16] [--requests 400]

Starts `seal-rag serve` on a free port as its own process, then for each number of clients
posts the spoken questions round-robin until `--requests` have been answered. A client that
gets 503 (every slot of the server busy) waits its Retry-After and tries again, as a well-behaved
client would: such requests count as `rejected`, and their latency runs from the first attempt.
Anything else that is not a 200 is an error. The server's resident memory is read after a
warm-up and after every level, so growth over the whole run shows. Writes `serve.json` and
`serve.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .report import write_report

WARMUP_REQUESTS = 5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(db: Path, max_concurrent: int) -> tuple[subprocess.Popen, str]:
    """`seal-rag serve` on a free loopback port; returns once /healthz answers."""
    import httpx

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "seal_rag.cli", "serve", "--db", str(db), "--port", str(port),
                                "--max-concurrent", str(max_concurrent)], stderr=subprocess.PIPE, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"seal-rag serve exited: {process.stderr.read().strip()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("seal-rag serve did not answer /healthz within 300 s")


async def run_level(url: str, clips: list[bytes], clients: int, requests: int) -> dict:
    """`requests` questions from `clients` concurrent clients; latency per answered question."""
    import httpx

    latencies, rejected, errors, next_index = [], 0, 0, 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal rejected, errors, next_index
        while next_index < requests:
            clip = clips[next_index % len(clips)]
            next_index += 1
            start = time.perf_counter()
            while True:
                try:
                    response = await http.post(f"{url}/v1/ask", content=clip)
                except httpx.HTTPError:
                    errors += 1
                    break
                if response.status_code == 503:
                    rejected += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
                break

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - start
    times = np.array(latencies) * 1000
    return {"clients": clients, "requests": requests, "answered": len(latencies), "errors": errors, "rejected_503": rejected,
            "p50_ms": float(np.percentile(times, 50)) if len(times) else None,
            "p95_ms": float(np.percentile(times, 95)) if len(times) else None,
            "throughput_per_s": len(latencies) / wall}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench serve", description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a seal-rag index to serve")
    parser.add_argument("--audio", type=Path, nargs="+", required=True, help="spoken questions, posted round-robin")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=400, help="answered questions per level")
    parser.add_argument("--max-concurrent", type=int, default=4, help="the server's bound (serve --max-concurrent)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    args = parser.parse_args(argv)
    if min(args.clients) < 1 or args.requests < 1:
        parser.error("--clients and --requests must be at least 1")
    missing = [str(path) for path in args.audio if not path.is_file()]
    if missing:
        parser.error(f"no such audio file: {', '.join(missing)}")
    clips = [path.read_bytes() for path in args.audio]
    process, url = start_server(args.db, args.max_concurrent)
    try:
        import httpx

        served = httpx.get(f"{url}/healthz", timeout=10).json()["model"]
        asyncio.run(run_level(url, clips, 1, WARMUP_REQUESTS))  # models warm, caches filled
        memory = [_rss_mb(process.pid)]
        levels = []
        for clients in args.clients:
            levels.append(asyncio.run(run_level(url, clips, clients, args.requests)))
            memory.append(_rss_mb(process.pid))
            print(f"{clients} clients: {levels[-1]}", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=30)
    payload = {"benchmark": "serve", "model": served["name"], "model_fingerprint": served["fingerprint"], "levels": levels, "server_rss_mb": memory, "max_concurrent": args.max_concurrent,
               "questions": [path.name for path in args.audio], "total_requests": WARMUP_REQUESTS + args.requests * len(levels)}
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    rows = [[lv["clients"], lv["answered"], lv["errors"], lv["rejected_503"], ms(lv["p50_ms"]), ms(lv["p95_ms"]),
             f"{lv['throughput_per_s']:.2f}", f"{rss:.0f}"] for lv, rss in zip(levels, memory[1:])]
    write_report(args.out, "serve", payload,
                 ["clients", "answered", "errors", "rejected (503, retried)", "p50 ms", "p95 ms", "questions/s", "server RSS MB after"], rows)
    print(f"server memory: {memory[0]:.0f} MB after warm-up, {memory[-1]:.0f} MB after {payload['total_requests']} requests")
