"""Embed a real spoken clip and a sentence into the same space, offline.

    python demos/quickstart.py
"""

from pathlib import Path

import numpy as np

from seal_rag import SpeechEmbedding

QUESTION = Path(__file__).resolve().parent / "audio" / "brooklyn_bridge_audio.flac"  # a human voice

model = SpeechEmbedding.from_pretrained()
speech = model.embed_audio([QUESTION])
text = model.embed_texts(["How old is the Brooklyn Bridge?"])
print(f"speech clip: shape {speech.shape}, norm {np.linalg.norm(speech[0]):.4f}")
print(f"sentence:    shape {text.shape}, norm {np.linalg.norm(text[0]):.4f}")
print(f"cosine(speech, sentence) = {float(speech[0] @ text[0]):.4f}")
