"""The training recipe of seal-rag's speech tower (SEAL stage 1 and stage 2, the phonetic half); `experiments/` holds what was tried.

Data flow, one module per step:
    text_sources -> tts (voices) -> augment -> cache (frozen encoder states on disk)
    -> stage1 (MSE alignment) -> stage2 (InfoNCE + CoSENT + MSE) -> evaluate -> export

`seal_rag` never imports this package; this package imports `seal_rag`.
"""
