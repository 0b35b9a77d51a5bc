"""Print an answered question and its sources, for people (text) or programs (JSON).

Everything here but the labels is untrusted (document text, titles, file names, the chat
model's words), so every line goes out through `safe_text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from .answer import Answer
from .safe_text import for_terminal, json_line
from .store import Hit

SNIPPET_CHARS = 160


@dataclass
class Answered:
    """One spoken question as `ask` answers it."""

    audio: str  # the file's name, or "-" for stdin
    hits: list[Hit]
    answer: Answer
    model: object  # `kb_tuning.ModelChoice`: which model answered
    transcript: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def finish_timings(self) -> dict[str, float]:
        """The stages' seconds, with generating the answer last once it is complete."""
        return {**self.timings, "generate": self.answer.seconds} if self.answer.kind == "llm" else self.timings


def render_text(result: Answered, show_timings: bool, header: bool) -> bool:
    """Answer (streamed if generated), then sources. Returns True if the answer failed."""
    if header:
        typer.echo(f"== {for_terminal(result.audio)} ==")
    if result.transcript is not None:
        typer.echo(f"Transcript: {for_terminal(result.transcript)}")
    if result.answer.kind == "extractive":
        typer.echo("Answer (extractive: the best-matching sentence of the top passage; no language model):")
        typer.echo(f"  {for_terminal(result.answer.text)}")
    else:
        typer.echo("Answer:")
        # Each character is judged alone, so an escape split across two tokens is caught too.
        for token in result.answer.tokens():
            typer.echo(for_terminal(token, multiline=True), nl=False)
        typer.echo("")
        if result.answer.error:
            typer.echo(f"error: {for_terminal(result.answer.error)}", err=True)
    typer.echo("Sources:")
    for hit in result.hits:
        row = hit.as_row()
        where = for_terminal(f"{row['source']}" + (f" p.{row['page']}" if row["page"] else ""))
        snippet = for_terminal(" ".join(hit.text.split())[:SNIPPET_CHARS])
        typer.echo(f"  {row['rank']}. score {row['score']:.3f}  {where} [chars {row['start_char']}-{row['end_char']}]")
        typer.echo(f"     {snippet}{'...' if len(hit.text) > SNIPPET_CHARS else ''}")
    if show_timings:
        stages = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in result.finish_timings().items())
        typer.echo(f"Timings: {stages}")
        typer.echo(f"Model: {for_terminal(result.model.describe())}")
    return result.answer.error is not None


def render_json(result: Answered, show_timings: bool, header: bool) -> bool:
    """One JSON object per query, one per line."""
    answer = result.answer.complete()
    payload = {
        "audio": result.audio,
        "transcript": result.transcript,
        "answer": answer.text,
        "answer_kind": answer.kind,
        "error": answer.error,
        "sources": [h.as_row() for h in result.hits],
        "timings": {k: round(v, 4) for k, v in result.finish_timings().items()},
        "model": result.model.as_dict(),  # which model answered: the index's tuned model, shipped, or --model
    }
    typer.echo(json_line(payload))
    if answer.error:
        typer.echo(f"error: {for_terminal(answer.error)}", err=True)
    return answer.error is not None
