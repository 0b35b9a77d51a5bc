"""The training recipe of seal-rag's speech tower (SEAL stage 1 and stage 2, the phonetic half); `experiments/` holds what was tried.

Data flow, one module per step:
    text_sources -> cache (spoken by `seal_rag.tts`, augmented by `seal_rag.augment`; frozen
    encoder states on disk) -> stage1 (MSE alignment) -> stage2 (InfoNCE + CoSENT + MSE)
    -> release (the semantic half, chosen on `evaluate`'s validation) -> phonetic (the phoneme
    recognizer, added to the released model)

`seal_rag` never imports this package; this package imports `seal_rag`.
"""
