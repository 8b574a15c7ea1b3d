"""Typed text -> world keywords, through the same NLP as speech (snapshot previews, a
backend's start prompt). Runs wherever it is imported.

The dictionary is `synesthesia.intent`'s (synonyms and inflections such as "snowy" or "golden",
multi-word forms, per-word weights); only words the procedural world knows are kept.
"""

from __future__ import annotations

import functools

__all__ = ["keywords_from_text"]


@functools.lru_cache(maxsize=1)
def _vocabulary():  # type: ignore[no-untyped-def]
    from synesthesia.intent import load_vocabulary

    return load_vocabulary()


def keywords_from_text(text: str) -> dict[str, float]:
    """Vocabulary words found in ``text`` with their dictionary weights, in order of mention."""
    from synesthesia.world.procedural import VOCABULARY

    known = set(VOCABULARY)
    return {k.word: k.weight for k in _vocabulary().match(text) if k.word in known}
