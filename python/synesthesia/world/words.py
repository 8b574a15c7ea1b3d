"""A stand-in keyword finder for typed text (snapshot previews, a backend's start prompt).

Temporary: the hearing branch's ``synesthesia.intent`` is the real NLP (weighted dictionary,
synonyms, negation); the snapshot command will switch to it when the branches meet. This one
only lower-cases, splits on non-letters, folds a few plural/inflected forms onto the procedural
vocabulary and gives every hit weight 1. Runs wherever it is imported; no dependencies.
"""

from __future__ import annotations

import re

__all__ = ["keywords_from_text"]

# Inflections and near-spellings people type, folded onto vocabulary words.
_FOLD = {
    "oceans": "ocean",
    "sea": "ocean",
    "forests": "forest",
    "woods": "forest",
    "deserts": "desert",
    "cities": "city",
    "mountain": "mountains",
    "storms": "storm",
    "stormy": "storm",
    "rainy": "rain",
    "raining": "rain",
    "snowy": "snow",
    "snowing": "snow",
    "foggy": "fog",
    "star": "stars",
    "starry": "stars",
    "fires": "fire",
    "campfire": "fire",
    "bonfire": "fire",
    "flames": "fire",
    "auroras": "aurora",
    "dawn": "sunrise",
    "dusk": "sunset",
}


def keywords_from_text(text: str) -> dict[str, float]:
    """Vocabulary words found in ``text``, each with weight 1.0, in order of appearance."""
    from synesthesia.world.procedural import VOCABULARY

    vocab = set(VOCABULARY)
    found: dict[str, float] = {}
    for token in re.findall(r"[a-z]+", text.lower()):
        word = _FOLD.get(token, token)
        if word in vocab:
            found[word] = 1.0
    return found
