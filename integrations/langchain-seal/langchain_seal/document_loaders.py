"""`SealDocumentLoader`: files and folders as the chunks `seal-rag ingest` stores, one `Document` each."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document
from seal_rag.chunking import DEFAULT_CHUNK_CHARS, DEFAULT_OVERLAP_CHARS, chunk_paths
from seal_rag.loaders import DEFAULT_MAX_FILE_MB


class SealDocumentLoader(BaseLoader):
    """Loads .txt, .md, .html, .pdf and .jsonl as seal-rag's chunks, already sized for its text tower.

    Each `Document` is one chunk, with the id and metadata `seal-rag ingest` gives it
    (source, title, start_char, end_char, chunk_index, page), so a store filled from these
    documents (`Chroma.from_documents(docs, SealEmbeddings(), ids=[d.id for d in docs])`)
    ranks like `seal-rag ask` on the same files. No text splitter is needed afterwards.

    Why the chunks are small: the text tower's semantic half (MiniLM) reads 256 word pieces
    and drops the rest. seal-rag cuts whole sentences into 1,000-character chunks (about 200
    tokens of English), never at an initial or an abbreviation.

    Args:
        paths: A file, a folder (read recursively, hidden names skipped), or a list of them.
        chunk_chars: Longest chunk, in characters.
        overlap_chars: Trailing sentences repeated at the start of the next chunk, up to this many characters.
        max_file_mb: Larger files are skipped.
        raise_on_error: Raise `seal_rag.DocumentError` for a file that cannot be read,
            instead of warning and skipping it.

    Example:
        >>> from langchain_seal import SealDocumentLoader
        >>> documents = SealDocumentLoader("docs/").load()
        >>> documents[0].id, documents[0].metadata["source"]
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        overlap_chars: int = DEFAULT_OVERLAP_CHARS,
        max_file_mb: float = DEFAULT_MAX_FILE_MB,
        raise_on_error: bool = False,
    ) -> None:
        self.paths = paths
        self.chunk_chars, self.overlap_chars, self.max_file_mb = chunk_chars, overlap_chars, max_file_mb
        self.raise_on_error = raise_on_error

    def lazy_load(self) -> Iterator[Document]:
        """One `Document` per chunk, file by file.

        Raises:
            seal_rag.DocumentError: a path does not exist or holds nothing readable.
        """
        chunks = chunk_paths(self.paths, self.chunk_chars, self.overlap_chars, self.max_file_mb, self.raise_on_error)
        for chunk in chunks:
            yield Document(page_content=chunk.text, metadata=chunk.metadata, id=chunk.id)
