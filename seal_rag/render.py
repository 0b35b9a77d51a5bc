"""Print an answer and its sources, for people (text) or programs (JSON).

Everything here but the labels is untrusted (document text, titles, file names, the chat
model's words), so every line goes out through `safe_text`.
"""

from __future__ import annotations

import time

import typer

from .errors import LLMError
from .safe_text import for_terminal, json_line

SNIPPET_CHARS = 160


def _generate(result: dict, on_token) -> str | None:
    """Drain the answer stream into `result`; returns the error message, if any."""
    if "stream" not in result:
        return None
    start, parts = time.perf_counter(), []
    try:
        for token in result.pop("stream"):
            parts.append(token)
            on_token(token)
        return None
    except LLMError as error:
        return str(error)
    finally:
        result["answer"] = "".join(parts)
        result["timings"]["generate"] = time.perf_counter() - start


def render_text(result: dict, show_timings: bool, header: bool) -> bool:
    """Answer (streamed if generated), then sources. Returns True if the answer failed."""
    if header:
        typer.echo(f"== {for_terminal(result['audio'])} ==")
    if result.get("transcript") is not None:
        typer.echo(f"Transcript: {for_terminal(result['transcript'])}")
    if result["answer_kind"] == "extractive":
        typer.echo("Answer (extractive: the best-matching sentence of the top passage; no language model):")
        typer.echo(f"  {for_terminal(result['answer'])}")
        error = None
    else:
        typer.echo("Answer:")
        # Each character is judged alone, so an escape split across two tokens is caught too.
        error = _generate(result, lambda token: typer.echo(for_terminal(token, multiline=True), nl=False))
        typer.echo("")
        if error:
            typer.echo(f"error: {for_terminal(error)}", err=True)
    typer.echo("Sources:")
    for hit in result["hits"]:
        row = hit.as_row()
        where = for_terminal(f"{row['source']}" + (f" p.{row['page']}" if row["page"] else ""))
        snippet = for_terminal(" ".join(hit.text.split())[:SNIPPET_CHARS])
        typer.echo(f"  {row['rank']}. score {row['score']:.3f}  {where} [chars {row['start_char']}-{row['end_char']}]")
        typer.echo(f"     {snippet}{'...' if len(hit.text) > SNIPPET_CHARS else ''}")
    if show_timings:
        stages = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in result["timings"].items())
        typer.echo(f"Timings: {stages}")
        typer.echo(f"Model: {for_terminal(result['model'].describe())}")
    return error is not None


def render_json(result: dict, show_timings: bool, header: bool) -> bool:
    """One JSON object per query, one per line."""
    error = _generate(result, lambda token: None)
    payload = {
        "audio": result["audio"],
        "transcript": result.get("transcript"),
        "answer": result["answer"],
        "answer_kind": result["answer_kind"],
        "error": error,
        "sources": [h.as_row() for h in result["hits"]],
        "timings": {k: round(v, 4) for k, v in result["timings"].items()},
        "model": result["model"].as_dict(),  # which model answered: the index's tuned model, shipped, or --model
    }
    typer.echo(json_line(payload))
    if error:
        typer.echo(f"error: {for_terminal(error)}", err=True)
    return error is not None
