"""The bundled demo is heard right: every sentence of python/synesthesia/data/demo.flac, run
through the default hearing (silero VAD, Whisper, the keyword NLP) as `synesthesia run` does,
yields the intent its text (demo.txt) carries, in order, and nothing else."""

from __future__ import annotations

from importlib import resources

from synesthesia.hearing import build_listener
from synesthesia.hearing.listener import TranscriptFinal, TranscriptPartial
from synesthesia.hearing.sources import FileSource
from synesthesia.intent import IntentTracker, load_vocabulary
from synesthesia.settings import load_settings
from synesthesia.stages.listen import listener_config


def demo_sentences() -> list[str]:
    text = resources.files("synesthesia").joinpath("data/demo.txt").read_text("utf-8")
    listing = text.split("in order:", 1)[1]
    return [s.strip() for s in " ".join(listing.split()).split(" / ")]


def test_every_demo_sentence_yields_its_intent() -> None:
    settings = load_settings(None, environ={})
    assert settings.listen.recognizer == "whisper"  # the default is what is checked
    vocab = load_vocabulary()
    listener = build_listener(vocab, config=listener_config(settings), recognizer=settings.listen.recognizer)
    tracker = IntentTracker(vocab)
    path = resources.files("synesthesia").joinpath("data/demo.flac")
    heard: list[tuple[str, ...]] = []
    early: list[str] = []
    for ev in listener.run(FileSource(str(path), realtime=False)):
        if isinstance(ev, TranscriptPartial):
            it = tracker.partial(ev.trace_id, ev.text)
            early += it.keywords if it else ()
        elif isinstance(ev, TranscriptFinal):
            it = tracker.final(ev.trace_id, ev.text)
            if it is not None:
                assert not it.retracted, (ev.text, it.retracted)
                heard.append(it.keywords)
    want = [tuple(k.word for k in vocab.match(s)) for s in demo_sentences()]
    assert len(want) == 9 and all(want)
    assert heard == want
    assert set(early) <= {k for kws in want for k in kws}
