"""The language side of the teacher's objective: CLIP loading, prompts, loss terms.

* :mod:`.clip`: frozen open_clip models from local weights only (tags found in
  the cache, files, or ``random`` for tests), and the tiny test CLIP;
* :mod:`.prompts`: per-role prompt texts and their averaged embeddings;
* :mod:`.losses`: directional, similarity, regularizer, entropy patch filter,
  CLIP input normalization and random affine crops.

The objective that combines them is :mod:`edgefusion.training.teacher`.
"""
