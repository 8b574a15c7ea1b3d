"""The pocketsphinx recognizer (runs in the listen process; in-process in tests and the bench): the
low-CPU choice (`--recognizer pocketsphinx`; the pocketsphinx wheel carries the en-US model).
It decodes against a small language model or grammar built from the keyword dictionary in which
every command word competes with a garbage model (frequent English words and a phone loop), so
speech that is not a command is absorbed by garbage instead of being forced onto the nearest
keyword.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.errors import RecognizerError
from synesthesia.hearing.base import Hypothesis, pcm16 as _pcm16

__all__ = ["PocketSphinxRecognizer", "PocketSphinxConfig", "FILLER_WORDS", "filler_words", "non_rhotic"]


# Frequent English words (none of them a command form) that give non-command speech somewhere to
# go in the grammar. Chosen as general frequent words, not from the test sentences.
FILLER_WORDS = """
a an the and or but if so to of in on at by for with from into over under about as than then
i you he she it we they me him her us them my your his its our their this that these those
is are was were be been being am do does did have has had will would can could should may might
must shall not no yes all some any each every more most many much few other such only own same
what which who whom whose when where why how here there now just also very too well still even
go going get got make made take took see saw look come came give put say said tell know think
want need like let keep find call try ask work feel leave show turn start play move live bring
one two three four five first last next new old good bad big small long little high low great
time year people way man woman child thing world life hand part place case week point number
home house room door car book paper water food money office school family friend name story
today tomorrow yesterday morning evening afternoon hour minute again always never often maybe
okay please thanks hello right left back down up out off away around through after before
""".split()

# ARPAbet phones of the en-US model, each made a pseudo-word so a phone loop can absorb speech
# the word list cannot; an underscore keeps them apart from real words.
_PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
           "UH UW V W Y Z ZH").split()


@dataclass(frozen=True)
class PocketSphinxConfig:
    """``mode``: "grammar" (the command forms in a loop, plus the garbage below) or "lm" (the
    wheel's general English language model; the keyword NLP picks the commands out of a full
    transcript, and ordinary speech has ordinary words to be recognized as; slow) or "smalllm" (a
    trigram model built at start-up from command sentences and filler-word sentences: commands
    get n-gram context, non-commands frequent words to land on; ``garbage_share`` is the share
    of filler sentences in its corpus, the bias between the two).
    ``word_garbage`` / ``phone_garbage``: JSGF weights of a filler word and of one garbage
    phone against a command form (1.0); 0 leaves that garbage model out of the grammar.
    ``verify``: the second pass, a log-likelihood ratio per frame between a command word's
    segment and a free phone loop decoded in lockstep over the same audio; words scoring below
    it are dropped (None turns the second pass off). ``beam``/``wbeam``/``pbeam``/``lw``/``wip``
    are pocketsphinx's own settings. ``closed_frames``: a partial hypothesis keeps only words that
    ended at least that many 10 ms frames ago (the last word of a partial is the one the search
    most often revises)."""

    mode: str = "smalllm"
    non_rhotic: bool = True  # add r-less pronunciations (British and other non-rhotic speech)
    garbage_share: float = 0.9
    frequent_fillers: int = 2000  # garbage words: FILLER_WORDS plus this many of the most frequent
    lm_seed: int = 7
    closed_frames: int = 8
    pause_closed_frames: int = 4  # closed_frames while the VAD hears a pause
    bestpath: bool = False  # LM modes only: the lattice pass, needed for min_posterior
    min_posterior: float | None = None  # LM modes, final only: drop command words below it
    # LM modes: the flat-lexicon second pass re-decodes the whole utterance inside end_utt
    # (~35 ms for a short command here), all of it between end of speech and the final intent
    fwdflat: bool = False
    word_garbage: float = 0.0
    phone_garbage: float = 0.0
    verify: float | None = None
    spn_garbage: float = 0.0
    fillprob: float = 1e-8
    silprob: float = 0.005
    beam: float = 1e-48
    wbeam: float = 7e-29
    pbeam: float = 1e-48
    lw: float = 9.0
    wip: float = 0.65


def _model_dir() -> Path:
    try:
        from pocketsphinx import get_model_path
    except ImportError:
        raise RecognizerError("pocketsphinx is not installed (pip install pocketsphinx)") from None
    return Path(get_model_path())


_CARRIERS = [
    "{}", "{}", "{}", "make it {}", "show me {}", "show me the {}", "go to the {}", "take me to {}",
    "turn it {}", "a {} please", "more {}", "now {}", "let it {}", "add some {}", "switch to {}",
    "{} and {}", "a {} {}", "{} over the {}", "{} in the {}", "{} at {}",
]


def _lm_corpus(phrases: list[str], fillers: list[str], garbage_share: float, seed: int) -> str:
    """Sentences for the small LM: every command phrase in a few generic carriers (alone, and
    paired with another phrase), and random filler-word sentences; the mix sets how readily
    speech is heard as a command."""
    import random

    rng = random.Random(seed)
    commands = []
    for carrier in _CARRIERS:
        for p in phrases:
            slots = carrier.count("{}")
            others = [rng.choice(phrases) for _ in range(slots - 1)]
            commands.append(carrier.format(p, *others))
    n_garbage = int(len(commands) * garbage_share / max(1e-9, 1 - garbage_share))
    garbage = [" ".join(rng.choice(fillers) for _ in range(rng.randint(2, 9))) for _ in range(n_garbage)]
    return "\n".join(commands + garbage) + "\n"


_VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
# non-rhotic English: an r that no vowel follows is not pronounced, and the vowel before it
# lengthens or glides to a schwa (RP, most of England, Australia, ...): star S T AA, storm
# S T AO M, clear K L IH AH, fire F AY AH, purple P AH P AH L (NURSE has no r-less vowel in the
# en-US model; AH is its nearest)
_R_DROP = {"AA": ["AA"], "AO": ["AO"], "IH": ["IH", "AH"], "IY": ["IH", "AH"], "EH": ["EH", "AH"],
           "EY": ["EH", "AH"], "UH": ["UH", "AH"], "UW": ["UH", "AH"], "AH": ["AH"], "AY": ["AY", "AH"],
           "AW": ["AW", "AH"], "OW": ["AO"], "OY": ["OY", "AH"], "AE": ["AE"]}


def non_rhotic(phones: str) -> str | None:
    """The r-less pronunciation of an en-US dictionary entry, or None when it has no r to lose
    (an r before a vowel stays: forest, aurora's second r)."""
    ps = phones.split()
    out: list[str] = []
    changed = False
    for i, p in enumerate(ps):
        nxt = ps[i + 1] if i + 1 < len(ps) else None
        if p == "ER" and nxt not in _VOWELS:
            out.append("AH")
            changed = True
        elif p == "R" and nxt not in _VOWELS and out and out[-1] in _VOWELS:
            out[-1:] = _R_DROP.get(out[-1], [out[-1]])
            changed = True
        else:
            out.append(p)
    return " ".join(out) if changed else None


_DICT_CACHE: dict[str, list[str]] | None = None


def _cmudict() -> dict[str, list[str]]:
    """word -> its pronunciations (first one first), read once per process from the wheel's
    dictionary."""
    global _DICT_CACHE
    if _DICT_CACHE is None:
        d: dict[str, list[str]] = {}
        with open(_model_dir() / "en-us" / "cmudict-en-us.dict", encoding="utf-8") as f:
            for line in f:
                word, _, phones = line.strip().partition(" ")
                base = word.split("(", 1)[0]
                d.setdefault(base, []).append(phones)
        _DICT_CACHE = d
    return _DICT_CACHE


_FREQUENT_CACHE: list[str] | None = None


def _frequent_words() -> list[str]:
    """Every dictionary word the wheel's general English LM knows, most frequent first (by its
    unigram probability), read once per process."""
    global _FREQUENT_CACHE
    if _FREQUENT_CACHE is None:
        from pocketsphinx import NGramModel

        lm = NGramModel.readfile(str(_model_dir() / "en-us" / "en-us.lm.bin"))
        unknown = lm.prob(["<unk>"])
        scored = [(lm.prob([w]), w) for w in _cmudict() if w.replace("'", "").isalpha()]
        _FREQUENT_CACHE = [w for s, w in sorted(scored, key=lambda x: (-x[0], x[1])) if s > unknown]
    return _FREQUENT_CACHE


def filler_words(n: int, commands: set[str], cmu: dict[str, list[str]]) -> list[str]:
    """The garbage vocabulary: FILLER_WORDS plus the ``n`` most frequent English words, less the
    command words and their exact homophones (read/red, blew/blue: a filler that sounds just like
    a command could only take the command's place)."""
    command_sounds = {p for w in commands for p in cmu[w]}
    words = list(FILLER_WORDS) + (_frequent_words()[:n] if n > 0 else [])
    return list(dict.fromkeys(w for w in words if w in cmu and w not in commands
                              and not any(p in command_sounds for p in cmu[w])))


class PocketSphinxRecognizer:
    """pocketsphinx over a command grammar with garbage. ``phrases``: every surface form the
    keyword dictionary accepts (single words and phrases)."""

    def __init__(self, phrases: Iterable[str], config: PocketSphinxConfig | None = None) -> None:
        from pocketsphinx import Config, Decoder

        self.config = cfg = config or PocketSphinxConfig()
        phrases = sorted(set(phrases))
        if not phrases:
            raise RecognizerError("no command phrases to recognize")
        cmu = _cmudict()
        words = sorted({w for p in phrases for w in p.split()})
        missing = [w for w in words if w not in cmu]
        if missing:
            raise RecognizerError(f"no pronunciation for {missing} in pocketsphinx's dictionary")
        fillers = filler_words(cfg.frequent_fillers, set(words), cmu)
        self._command_words = set(words)

        lines = [f"{w}{'' if i == 0 else f'({i + 1})'} {p}" for w in sorted(set(words) | set(fillers))
                 for i, p in enumerate(self._pronunciations(cmu[w]))]
        lines += [f"_{p.lower()} {p}" for p in _PHONES]
        lines.append("_spn +SPN+")  # the model's "spoken noise" unit: speech that is no word
        alts = [f"/1.0/ <cmd>"]
        if cfg.word_garbage > 0:
            alts.append(f"/{cfg.word_garbage:g}/ <filler>")
        if cfg.phone_garbage > 0:
            alts.append(f"/{cfg.phone_garbage:g}/ <phone>")
        if cfg.spn_garbage > 0:
            alts.append(f"/{cfg.spn_garbage:g}/ _spn")
        grammar = "\n".join([
            "#JSGF V1.0;",
            "grammar commands;",
            "public <utt> = <item>+;",
            f"<item> = {' | '.join(alts)};",
            f"<cmd> = {' | '.join(phrases)};",
            f"<filler> = {' | '.join(fillers)};",
            f"<phone> = {' | '.join('_' + p.lower() for p in _PHONES)};",
        ])
        if len(alts) == 1:
            grammar = grammar.replace("<item> = /1.0/ <cmd>;", "<item> = <cmd>;")
        self.grammar = grammar
        if cfg.mode not in ("grammar", "lm", "smalllm"):
            raise RecognizerError(f"unknown pocketsphinx mode {cfg.mode!r}: expected grammar, lm or smalllm")
        model = _model_dir() / "en-us"
        common = dict(hmm=str(model / "en-us"), beam=cfg.beam, wbeam=cfg.wbeam, pbeam=cfg.pbeam,
                      lw=cfg.lw, wip=cfg.wip, fillprob=cfg.fillprob, silprob=cfg.silprob,
                      loglevel="FATAL")
        if cfg.mode == "lm":
            self._decoder = Decoder(Config(lm=str(model / "en-us.lm.bin"),
                                           dict=str(model / "cmudict-en-us.dict"),
                                           bestpath=cfg.bestpath, **common))
        elif cfg.mode == "smalllm":
            from pocketsphinx.lm import ArpaBoLM

            corpus = _lm_corpus(phrases, fillers, cfg.garbage_share, cfg.lm_seed)
            lm = ArpaBoLM(text=corpus, add_start=True)
            lm.compute()
            with tempfile.TemporaryDirectory(prefix="synesthesia-ps-") as tmp:
                dict_path = Path(tmp) / "commands.dict"
                dict_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
                lm_path = Path(tmp) / "commands.arpa"
                lm.write_file(str(lm_path))
                self._decoder = Decoder(Config(dict=str(dict_path), lm=str(lm_path),
                                               bestpath=cfg.bestpath, fwdflat=cfg.fwdflat, **common))
        else:
            # pocketsphinx reads both files while the decoder is built; nothing refers to them later
            with tempfile.TemporaryDirectory(prefix="synesthesia-ps-") as tmp:
                dict_path = Path(tmp) / "commands.dict"
                dict_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
                gram_path = Path(tmp) / "commands.gram"
                gram_path.write_text(grammar + "\n", encoding="utf-8")
                # bestpath=False: with a looping grammar the lattice best-path pass can hang end_utt()
                self._decoder = Decoder(Config(dict=str(dict_path), jsgf=str(gram_path), lm=None,
                                               bestpath=False, **common))
        self._phones: Any = None
        if cfg.verify is not None:
            model = _model_dir() / "en-us"
            self._phones = Decoder(Config(hmm=str(model / "en-us"), allphone=str(model / "en-us-phone.lm.bin"),
                                          lm=None, bestpath=False, loglevel="FATAL"))
        self._in_utt = False
        self._cmn0 = self._decoder.get_cmn(False)
        self._phones_cmn0 = self._phones.get_cmn(False) if self._phones is not None else ""

    def new_stream(self) -> None:
        """A new audio stream: the cepstral mean that adapted to the last one (its microphone,
        room, noise) starts over from the model's initial estimate."""
        if self._in_utt:
            self._end()
        self._decoder.set_cmn(self._cmn0)
        if self._phones is not None:
            self._phones.set_cmn(self._phones_cmn0)

    def _pronunciations(self, prons: list[str]) -> list[str]:
        """The dictionary's pronunciations, plus their r-less forms when ``non_rhotic`` (for
        command and filler words alike, so garbage stays as easy to reach as commands)."""
        out = list(prons)
        if self.config.non_rhotic:
            out += [v for p in prons if (v := non_rhotic(p)) is not None]
        return list(dict.fromkeys(out))

    def start(self) -> None:
        if self._in_utt:
            self._end()
        self._decoder.start_utt()
        if self._phones is not None:
            self._phones.start_utt()
        self._in_utt = True

    def _end(self) -> None:
        self._decoder.end_utt()
        if self._phones is not None:
            self._phones.end_utt()
        self._in_utt = False

    def feed(self, audio: npt.NDArray[np.float32]) -> None:
        if not self._in_utt:
            self.start()
        pcm = _pcm16(audio)
        self._decoder.process_raw(pcm, False, False)
        if self._phones is not None:
            self._phones.process_raw(pcm, False, False)

    def _hyp(self) -> Hypothesis | None:
        if self._phones is None:
            h = self._decoder.hyp()
            words = h.hypstr.split() if h is not None and h.hypstr else []
            if self.config.mode != "grammar":
                n_cmd = sum(w in self._command_words for w in words)
                return Hypothesis(" ".join(words), n_cmd / len(words)) if words else None
            kept = [w for w in words if w in self._command_words]
            # the share of decoded words that are command words stands in for a confidence:
            # a posterior needs the lattice pass that bestpath=False skips
            return Hypothesis(" ".join(kept), len(kept) / len(words)) if kept else None
        return self._verified()

    def _verified(self) -> Hypothesis | None:
        """Command words whose acoustic score beats the phone loop's over the same frames by
        ``verify`` (log per frame). Scores come from the bindings as probabilities (logmath
        exp), so they go back to logs here."""
        segs = self._decoder.seg()  # can be None mid-utterance
        if segs is None:
            return None
        everything = [(s.word.split("(", 1)[0], s.start_frame, s.end_frame, s.ascore) for s in segs]
        words = [x for x in everything if x[0] in self._command_words]
        if not words:
            if self.config.mode != "grammar":
                text = " ".join(w for w, *_ in everything if not w.startswith(("<", "[")) and w != "(NULL)")
                return Hypothesis(text, 0.0) if text else None
            return None
        per_frame: dict[int, float] = {}
        for p in self._phones.seg() or ():
            n = p.end_frame - p.start_frame + 1
            lp = math.log(max(p.ascore, 1e-300)) / n
            for f in range(p.start_frame, p.end_frame + 1):
                per_frame[f] = lp
        threshold = self.config.verify
        kept, scores, rejected = [], [], set()
        for i, (w, a, b, ascore) in enumerate(words):
            n = b - a + 1
            loop = math.fsum(per_frame.get(f, 0.0) for f in range(a, b + 1))
            llr = (math.log(max(ascore, 1e-300)) - loop) / n
            if threshold is None or llr >= threshold:
                kept.append(w)
                scores.append(llr)
            else:
                rejected.add((a, b))
        if self.config.mode != "grammar":
            # the transcript stays whole; only command words that failed the check leave it
            text = " ".join(w for w, a, b, _ in everything
                            if not w.startswith(("<", "[")) and w != "(NULL)" and (a, b) not in rejected)
            if not text:
                return None
            if not kept:
                return Hypothesis(text, 0.0)
        if not kept:
            return None
        # map the ratio to 0..1: 0.5 at the threshold, rising as the word beats the loop
        margin = min(scores) - (threshold or 0.0)
        conf = 1.0 / (1.0 + math.exp(-margin * 1000.0))
        return Hypothesis(text if self.config.mode != "grammar" else " ".join(kept), conf)

    def partial(self, pausing: bool = False) -> Hypothesis | None:
        """``pausing``: the VAD hears no speech in the latest audio, so the last word is likely
        complete and ``pause_closed_frames`` replaces ``closed_frames``."""
        if not self._in_utt:
            return None
        if self._phones is not None:
            return self._hyp()
        segs = self._decoder.seg()  # None until the search has a path
        if segs is None:
            return None
        closed = self.config.pause_closed_frames if pausing else self.config.closed_frames
        limit = self._decoder.n_frames() - closed
        words = [w for seg in segs if seg.end_frame < limit
                 and not (w := seg.word.split("(", 1)[0]).startswith(("<", "[")) and w != "(NULL)"]
        if self.config.mode == "grammar":
            words = [w for w in words if w in self._command_words]
        if not words:
            return None
        n_cmd = sum(w in self._command_words for w in words)
        return Hypothesis(" ".join(words), n_cmd / len(words))

    def finish(self) -> Hypothesis:
        if not self._in_utt:
            return Hypothesis("", 0.0)
        self._end()
        if self.config.min_posterior is not None and self.config.mode != "grammar" and self._phones is None:
            return self._posterior_filtered() or Hypothesis("", 0.0)
        return self._hyp() or Hypothesis("", 0.0)

    def _posterior_filtered(self) -> Hypothesis | None:
        """The transcript without command words whose lattice posterior is under
        ``min_posterior``; the confidence is the lowest posterior among those kept."""
        segs = self._decoder.seg()
        if segs is None:
            return None
        words, probs = [], []
        for seg in segs:
            w = seg.word.split("(", 1)[0]
            if w.startswith(("<", "[")) or w == "(NULL)":
                continue
            if w in self._command_words:
                if seg.prob < (self.config.min_posterior or 0.0):
                    continue
                probs.append(seg.prob)
            words.append(w)
        if not words:
            return None
        return Hypothesis(" ".join(words), min(probs) if probs else 0.0)
