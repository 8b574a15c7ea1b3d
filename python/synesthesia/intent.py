"""Keyword NLP for the nlp stage (runs in the nlp process; in-process in tests and the bench):
turns a transcript, spoken or typed, into an `Intent` (canonical keywords, weights, a prompt for
the world) through a weighted keyword dictionary loaded from TOML.

The dictionary is compiled once into a dict from surface form (a word, or a phrase of up to
`max_phrase` words) to its entry, so matching a transcript is one dict lookup per word and phrase
length: a few microseconds for a spoken command.

Partial transcripts may raise early intents; `IntentTracker` makes the final transcript confirm
or retract them, per utterance (trace id).
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from synesthesia.errors import VocabularyError

__all__ = ["Keyword", "Vocabulary", "Intent", "IntentTracker", "load_vocabulary", "compounds", "CATEGORY_ORDER", "TOLERANCES"]

# Prompt fragments are joined in this order so "gold" + "desert" + "sunset" reads naturally.
CATEGORY_ORDER = ("scene", "time", "weather", "effect", "colour", "tempo")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")

# Where recognizers err, the matcher bends (each rule measured for false intents in
# bench/results/listen.md before it stayed; `Vocabulary(tolerance=...)` turns them off one by one):
#   split   a one-word form heard as two words: "sun rise", "sun-rise", "thunder storm"
#   merged  a form run into the next word: "bluewater", "redsky" (the rest must be another form
#           or one of _MERGE_REST), unless the whole is an English word (compounds.txt: bluetooth)
#   near    a long form (7+ letters) with one letter more, one less, or two swapped, never the
#           first or last: "lightening", "nightime", "thunderstrom" ("training" stays training)
#   compound  a form that is half of an English word split in two is no keyword: "nice to day"
#           is "today", "star fish" is "starfish"; but after a change word ("back to day", "switch
#           tonight", "make it today": Whisper hears "it day" as "it today") "to" + form is the form
TOLERANCES = frozenset({"split", "merged", "near", "compound"})
_MERGE_REST = frozenset({"water", "waters", "sky", "skies", "light", "lights", "please", "now", "scene", "world"})
_CHANGE_WORDS = frozenset({"back", "switch", "change", "turn", "go", "it", "them", "everything", "straight"})
_NEAR_MIN = 7


# Identity equality (eq=False): each entry exists once in its vocabulary, and matching tests
# membership many times per transcript; field-by-field __eq__ was a measurable share of it.
@dataclass(frozen=True, slots=True, eq=False)
class Keyword:
    word: str  # canonical
    category: str
    weight: float
    prompt: str
    forms: tuple[str, ...]  # every surface form, the canonical word included


@dataclass(slots=True)
class Intent:
    """What the world should change. ``keywords`` are canonical words in order of first mention;
    ``final`` is False for an early intent from a partial transcript; ``retracted`` lists the
    keywords an earlier partial intent of the same trace announced that the final one dropped.

    Treat it as a value; it is not frozen only because a frozen dataclass's constructor costs
    about as much as matching the transcript (20 vs 9 us in an idle process's cold cache)."""

    trace_id: str
    keywords: tuple[str, ...]
    weights: tuple[float, ...]
    prompt: str
    text: str
    final: bool = True
    source: str = "speech"  # "speech" or "typed"
    retracted: tuple[str, ...] = ()
    t_transcript_ns: int = 0  # CLOCK_MONOTONIC of the transcript it came from
    t_intent_ns: int = field(default_factory=time.monotonic_ns)


class Vocabulary:
    """A compiled keyword dictionary. `match` returns the canonical keywords in a text."""

    def __init__(self, keywords: Iterable[Keyword], tolerance: Iterable[str] = TOLERANCES) -> None:
        self.tolerance = frozenset(tolerance)
        unknown = self.tolerance - TOLERANCES
        if unknown:
            raise VocabularyError(f"unknown tolerance rule(s) {sorted(unknown)}: expected some of {sorted(TOLERANCES)}")
        self.keywords: dict[str, Keyword] = {}
        self._forms: dict[str, Keyword] = {}
        for kw in keywords:
            if kw.word in self.keywords:
                raise VocabularyError(f"keyword {kw.word!r} is defined twice")
            self.keywords[kw.word] = kw
            for form in kw.forms:
                other = self._forms.get(form)
                if other is not None and other is not kw:
                    raise VocabularyError(f"form {form!r} belongs to both {other.word!r} and {kw.word!r}")
                self._forms[form] = kw
        self.max_phrase = max((f.count(" ") + 1 for f in self._forms), default=1)
        # first word of a phrase -> the phrase lengths starting with it, longest first, so most
        # words cost a single dict lookup and no string joins
        heads: dict[str, set[int]] = {}
        for f in self._forms:
            parts = f.split(" ")
            if len(parts) > 1:
                heads.setdefault(parts[0], set()).add(len(parts))
        self._heads = {w: sorted(ks, reverse=True) for w, ks in heads.items()}
        self._order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
        self._build_tolerance()
        # keywords found, in order -> (words, weights, prompt): a few combinations recur, and
        # building them was a third of a transcript's cost in an idle process's cold cache
        self._built: dict[tuple[Keyword, ...], tuple[tuple[str, ...], tuple[float, ...], str]] = {}

    @property
    def forms(self) -> Mapping[str, Keyword]:
        """Every surface form (single words and space-separated phrases) -> its keyword."""
        return self._forms

    def words(self) -> set[str]:
        """Every single word that occurs in some form: what a recognizer must be able to say."""
        return {w for f in self._forms for w in f.split()}

    def _build_tolerance(self) -> None:
        singles = {f: kw for f, kw in self._forms.items() if " " not in f}
        # split: first part -> second part -> keyword (both parts 2+ letters)
        self._splits: dict[str, dict[str, Keyword]] = {}
        for f, kw in singles.items():
            for i in range(2, len(f) - 1):
                self._splits.setdefault(f[:i], {})[f[i:]] = kw
        # near: a form's one-letter-less and swapped variants -> keyword (a longer token is
        # checked by deleting each inner letter of it instead)
        self._near: dict[str, Keyword] = {}
        for f, kw in singles.items():
            if len(f) < _NEAR_MIN:
                continue
            for i in range(1, len(f) - 1):
                self._near.setdefault(f[:i] + f[i + 1 :], kw)
                if i < len(f) - 2 and f[i] != f[i + 1]:
                    self._near.setdefault(f[:i] + f[i + 1] + f[i] + f[i + 2 :], kw)
        for f in singles:
            self._near.pop(f, None)
        self._singles = singles
        self._compounds = compounds()

    def _tolerant(self, tokens: list[str], i: int) -> tuple[Keyword | None, int]:
        """The keyword the token at ``i`` (and maybe the next) makes under the tolerance rules,
        and how many tokens it used; (None, 1) when none."""
        tok, tol = tokens[i], self.tolerance
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if "split" in tol and nxt is not None:
            kw = self._splits.get(tok, {}).get(nxt)
            if kw is not None:
                return kw, 2
        if tok in self._compounds:
            # "switch tonight", "back today": the recognizer merged "to" into the destination
            if ("compound" in tol and tok.startswith("to") and i > 0 and tokens[i - 1] in _CHANGE_WORDS
                    and tok[2:] in self._singles):
                return self._singles[tok[2:]], 1
            return None, 1
        if "merged" in tol and len(tok) >= 5:
            for j in range(2, len(tok) - 1):
                head, rest = tok[:j], tok[j:]
                kw = self._singles.get(head)
                if kw is not None and (rest in _MERGE_REST or rest in self._singles):
                    return kw, 1
        if "near" in tol and len(tok) >= _NEAR_MIN - 1:
            kw = self._near.get(tok)
            if kw is None and len(tok) > _NEAR_MIN:
                for j in range(1, len(tok) - 1):
                    kw = self._singles.get(tok[:j] + tok[j + 1 :])
                    if kw is not None and len(kw.word) >= _NEAR_MIN:
                        break
                    kw = None
            if kw is not None:
                return kw, 1
        return None, 1

    def _half_of_compound(self, tokens: list[str], i: int) -> bool:
        """The form at ``i`` is half of an English word the recognizer split ("to day"), the
        other half being no form itself ("rain forest" is two keywords, not "rainforest")."""
        if "compound" not in self.tolerance:
            return False
        tok, forms = tokens[i], self._forms
        if i > 0 and tokens[i - 1] not in forms and tokens[i - 1] + tok in self._compounds:
            # "back to day", "switch to night": a destination after a change word is the keyword
            return not (tokens[i - 1] == "to" and i > 1 and tokens[i - 2] in _CHANGE_WORDS)
        return i + 1 < len(tokens) and tokens[i + 1] not in forms and tok + tokens[i + 1] in self._compounds

    def match(self, text: str) -> list[Keyword]:
        """Keywords in order of first mention; the longest phrase wins where forms overlap
        ("clear skies" is one match, not "clear" then a stray "skies"). The tolerance rules
        (see TOLERANCES) apply only to words that are no form as they stand."""
        tokens = _TOKEN.findall(text.lower().replace("-", " "))
        found: list[Keyword] = []
        i, n, forms, heads = 0, len(tokens), self._forms, self._heads
        while i < n:
            tok = tokens[i]
            kw = None
            step = 1
            for k in heads.get(tok, ()):
                if i + k <= n:
                    kw = forms.get(" ".join(tokens[i : i + k]))
                    if kw is not None:
                        step = k
                        break
            if kw is None:
                kw = forms.get(tok)
                if kw is not None and self._half_of_compound(tokens, i):
                    kw = None
                elif kw is None and self.tolerance:
                    kw, step = self._tolerant(tokens, i)
            if kw is not None and kw not in found:
                found.append(kw)
            i += step
        return found

    def build(self, found: Iterable[Keyword]) -> tuple[tuple[str, ...], tuple[float, ...], str]:
        """(canonical words, weights, prompt) of keywords found in this order (memoized)."""
        key = tuple(found)
        built = self._built.get(key)
        if built is None:
            built = (tuple(k.word for k in key), tuple(k.weight for k in key), self.prompt(key))
            if len(self._built) >= 4096:  # bounded: a long session of typed prompts cannot grow it
                self._built.clear()
            self._built[key] = built
        return built

    def prompt(self, keywords: Iterable[Keyword]) -> str:
        parts = sorted((k for k in keywords if k.prompt), key=lambda k: self._order.get(k.category, 99))
        return ", ".join(k.prompt for k in parts)

    def intent(self, text: str, trace_id: str, *, final: bool = True, source: str = "speech",
               t_transcript_ns: int = 0) -> Intent | None:
        """The intent a transcript carries, or None when it names no keyword."""
        found = self.match(text)
        if not found:
            return None
        words, weights, prompt = self.build(found)
        return Intent(trace_id, words, weights, prompt, text, final, source, (), t_transcript_ns)


def _entry(word: str, raw: Any) -> Keyword:
    where = f"keywords.{word}"
    if not isinstance(raw, dict):
        raise VocabularyError(f"{where}: expected a table, got {type(raw).__name__}")
    unknown = set(raw) - {"category", "weight", "forms", "prompt"}
    if unknown:
        raise VocabularyError(f"{where}: unknown key(s) {sorted(unknown)}")
    category = raw.get("category")
    if category not in CATEGORY_ORDER:
        raise VocabularyError(f"{where}.category = {category!r}: expected one of {CATEGORY_ORDER}")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise VocabularyError(f"{where}.weight = {weight!r}: expected a number in 0..1")
    forms = raw.get("forms", [])
    if not isinstance(forms, list) or not all(isinstance(f, str) for f in forms):
        raise VocabularyError(f"{where}.forms = {forms!r}: expected a list of strings")
    prompt = raw.get("prompt", "")
    if not isinstance(prompt, str):
        raise VocabularyError(f"{where}.prompt = {prompt!r}: expected a string")
    norm = []
    for f in [word, *forms]:
        tokens = _TOKEN.findall(f.lower())
        if not tokens or " ".join(tokens) != f.lower().strip():
            raise VocabularyError(f"{where}: form {f!r} must be lower-case words separated by spaces")
        norm.append(" ".join(tokens))
    return Keyword(word, category, float(weight), prompt, tuple(dict.fromkeys(norm)))


_COMPOUNDS: frozenset[str] | None = None


def compounds() -> frozenset[str]:
    """English words made of a keyword form and another word (data/compounds.txt), read once."""
    global _COMPOUNDS
    if _COMPOUNDS is None:
        text = resources.files("synesthesia").joinpath("data/compounds.txt").read_text("utf-8")
        words = {w for line in text.splitlines() if (w := line.strip()) and not w.startswith("#")}
        # the list was cut at a word frequency: a plural made it in where its singular did not
        # ("raindrops", not "raindrop"); the singular is the same compound
        words |= {w[:-1] for w in words if w.endswith("s") and not w.endswith("ss") and len(w) > 5}
        _COMPOUNDS = frozenset(words)
    return _COMPOUNDS


def load_vocabulary(path: str | Path | None = None, tolerance: Iterable[str] = TOLERANCES) -> Vocabulary:
    """The dictionary at ``path``, or the default one shipped in the package; ``tolerance``: the
    matcher's rules for recognizer errors (see TOLERANCES)."""
    try:
        if path is None:
            text = resources.files("synesthesia").joinpath("vocabulary.toml").read_text("utf-8")
            where = "synesthesia/vocabulary.toml"
        else:
            text, where = Path(path).read_text("utf-8"), str(path)
    except OSError as e:
        raise VocabularyError(f"cannot read vocabulary {path}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise VocabularyError(f"{where}: {e}") from None
    table = data.get("keywords")
    if not isinstance(table, dict) or not table:
        raise VocabularyError(f"{where}: no [keywords.<word>] tables")
    return Vocabulary((_entry(w, raw) for w, raw in table.items()), tolerance)


class IntentTracker:
    """Per-utterance bookkeeping between partial and final transcripts.

    A partial transcript publishes an early intent when it names a keyword no earlier intent of
    the trace announced. The final transcript always publishes (when it names a keyword, or to
    retract announced ones) a final intent listing what it dropped."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._announced: dict[str, tuple[str, ...]] = {}

    def partial(self, trace_id: str, text: str, t_transcript_ns: int = 0) -> Intent | None:
        found = self.vocabulary.match(text)
        before = self._announced.get(trace_id, ())
        new = [k for k in found if k.word not in before]
        if not new:
            return None
        merged = [self.vocabulary.keywords[w] for w in before] + new
        words, weights, prompt = self.vocabulary.build(merged)
        self._announced[trace_id] = words
        return Intent(trace_id, words, weights, prompt, text, False, "speech", (), t_transcript_ns)

    def final(self, trace_id: str, text: str, t_transcript_ns: int = 0, source: str = "speech") -> Intent | None:
        found = self.vocabulary.match(text)
        before = self._announced.pop(trace_id, ())
        words, weights, prompt = self.vocabulary.build(found)
        retracted = tuple(w for w in before if w not in words) if before else ()
        if not found and not retracted:
            return None
        return Intent(trace_id, words, weights, prompt, text, True, source, retracted, t_transcript_ns)

    def typed(self, trace_id: str, text: str) -> Intent | None:
        """Typed text goes through the same path as a final transcript."""
        return self.final(trace_id, text, time.monotonic_ns(), source="typed")
