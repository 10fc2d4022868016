"""The shared base every chapter stands on: device and seeding (:mod:`.env`), data
(:mod:`.data`), the training loop and gradient clipping (:mod:`.train`), metrics
(:mod:`.metrics`), decoding (:mod:`.decoding`), figures (:mod:`.plots`), saved
models (:mod:`.checkpoints`), the explorers' base (:mod:`.explorer`) and the book
pages' helpers (:mod:`.book`). Nothing here imports from the rest of seqlab.
"""
