"""`SealReader`: files and folders as the chunks `seal-rag ingest` stores, one `Document` each."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.readers.base import BasePydanticReader
from llama_index.core.schema import Document, NodeRelationship, RelatedNodeInfo
from seal_rag.chunking import DEFAULT_CHUNK_CHARS, DEFAULT_OVERLAP_CHARS, chunk_paths
from seal_rag.errors import DocumentError
from seal_rag.loaders import DEFAULT_MAX_FILE_MB

# Where in its file a chunk sits: useful to cite, noise to an LLM.
POSITION_KEYS = ("start_char", "end_char", "chunk_index")


class SealReader(BasePydanticReader):
    """Reads .txt, .md, .html, .pdf and .jsonl into seal-rag's chunks, already sized for its text tower.

    Each `Document` is one chunk: `id_` is the chunk id `seal-rag ingest` gives it and
    `metadata` the same fields (source, title, start_char, end_char, chunk_index, page), so
    an index built from these documents ranks like `seal-rag ask` on the same files.

    Why the chunks are small: the text tower's semantic half (MiniLM) reads 256 word pieces
    and drops the rest, and LlamaIndex's default splitter makes 1,024-token chunks. seal-rag
    cuts whole sentences into 1,000-character chunks (about 200 tokens of English), so index
    the documents as nodes, `VectorStoreIndex(documents, ...)`, which keeps them whole with
    their ids (`from_documents` would split them again and give new ids). Metadata is left
    out of the embedded text (as ingest embeds the chunk alone); the LLM sees source and title.

    Args:
        chunk_chars: Longest chunk, in characters.
        overlap_chars: Trailing sentences repeated at the start of the next chunk, up to this many characters.
        max_file_mb: Larger files are skipped.
        raise_on_error: Raise `seal_rag.DocumentError` for a file that cannot be read,
            instead of warning and skipping it.

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> from llama_index.readers.seal import SealReader
        >>> documents = SealReader().load_data("docs/")
        >>> index = VectorStoreIndex(documents, embed_model=embed_model)  # as nodes: no re-splitting
    """

    model_config = ConfigDict(extra="forbid")

    is_remote: bool = False
    chunk_chars: int = Field(default=DEFAULT_CHUNK_CHARS, gt=0, description="Longest chunk, in characters.")
    overlap_chars: int = Field(default=DEFAULT_OVERLAP_CHARS, ge=0, description="Overlap between chunks, in characters.")
    max_file_mb: float = Field(default=DEFAULT_MAX_FILE_MB, gt=0, description="Larger files are skipped.")
    raise_on_error: bool = Field(default=False, description="Raise for an unreadable file instead of skipping it.")

    @classmethod
    def class_name(cls) -> str:
        return "SealReader"

    def lazy_load_data(self, paths: str | Path | Sequence[str | Path] | None = None, *,
                       file_path: str | Path | None = None, extra_info: dict | None = None,
                       fs: Any = None) -> Iterable[Document]:
        """One `Document` per chunk of the files, or of the supported files under the folders, in `paths`.

        `file_path=` and `extra_info=` are what `SimpleDirectoryReader` passes a reader in
        its `file_extractor`: the path, and metadata added under each chunk's own.

        Raises:
            seal_rag.DocumentError: a path does not exist or holds nothing readable, or `fs`
                names a file system other than the local one.
        """
        if fs is not None:
            raise DocumentError("SealReader reads local files only: copy the files to a local folder first")
        paths = file_path if paths is None else paths
        chunks = chunk_paths(paths, self.chunk_chars, self.overlap_chars, self.max_file_mb, self.raise_on_error)
        for chunk in chunks:
            metadata = {**(extra_info or {}), **chunk.metadata}
            yield Document(
                id_=chunk.id,
                # Indexed as nodes, a document is its own source: without this its nodes carry no
                # ref_doc_id, and `index.delete_ref_doc(document.id_)` deletes nothing.
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=chunk.id)},
                text=chunk.text,
                metadata=metadata,
                excluded_embed_metadata_keys=list(metadata),
                excluded_llm_metadata_keys=[key for key in metadata if key in POSITION_KEYS],
            )
