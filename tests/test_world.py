"""The procedural world: determinism, the vocabulary's effect on rendered frames, easing,
intent validation and the spectral pulse."""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import pytest

from synesthesia import _native
from synesthesia.errors import IntentRejected, KernelArgumentError
from synesthesia.world import (
    STATE_NAMES,
    VOCABULARY,
    Intent,
    ProceduralBackend,
    render_state,
    spectral_pulse,
    validate_intent,
)

SIZE = (320, 176)
MS = 1_000_000


def settled_frame(
    words: list[str], seconds: float = 2.0, base: dict[str, float] | None = None
) -> npt.NDArray[np.uint8]:
    """Frame after ``seconds`` of wall time from ``base``, with ``words`` applied at the start."""
    scene = _native.WorldScene(0.3, 0.35)
    if base:
        scene.apply(list(base.items()))
        scene.settle()
    if words:
        scene.apply([(w, 1.0) for w in words])
    for _ in range(int(seconds / 0.04)):
        scene.advance(0.04)
    return render_state(scene.current(), scene.world_time(), SIZE, seed=5)


def distance(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def test_vocabulary_is_the_issue_list() -> None:
    assert set(VOCABULARY) == set(
        "ocean forest desert city mountains space rain snow storm fog clear night day sunset sunrise "
        "fire lightning aurora stars faster slower calm freeze red blue green gold purple".split()
    )


def test_same_seed_and_intents_give_identical_frames() -> None:
    def session(seed: int) -> list[bytes]:
        world = ProceduralBackend(*SIZE, seed=seed)
        out = []
        t = 1_000 * MS
        for i, words in enumerate((["storm"], ["mountains", "night"], ["fire", "gold"])):
            world.apply(Intent({w: 1.0 for w in words}, trace_id=f"t{i}", t_ns=t))
            for _ in range(5):
                t += 40 * MS
                out.append(world.poll(t).pixels.tobytes())
        return out

    assert session(11) == session(11)
    assert session(11) != session(12)


def test_every_word_changes_the_frame_and_differently() -> None:
    # One baseline that no single word already describes: half forest, half mountains, half
    # day, half sunset.
    base = {"forest": 0.5, "day": 0.5}
    before = settled_frame([], base=base)
    frames = {}
    for word in VOCABULARY:
        frames[word] = settled_frame([word], base=base)
        moved = distance(before, frames[word])
        assert moved > 1.5, f"{word!r} barely changes the frame (mean abs difference {moved:.2f})"
    for a, b in itertools.combinations(VOCABULARY, 2):
        d = distance(frames[a], frames[b])
        assert d > 0.5, f"{a!r} and {b!r} look the same (mean abs difference {d:.2f})"


#: The issue's bar: a word said once moves the start scene's 640x352 snapshot by at least this
#: mean absolute difference (0-255), so "make it blue" is seen.
VISIBLE = 10.0


def test_every_word_is_seen_from_the_start_scene() -> None:
    from synesthesia.world.procedural import START_WORDS, word_visibility

    moved = word_visibility((640, 352), seed=0)
    assert set(moved) == set(VOCABULARY)
    for word in START_WORDS:
        assert moved[word] == 0.0, f"{word!r} is in the start scene yet changes it by {moved[word]:.1f}"
    faint = {w: round(d, 1) for w, d in moved.items() if w not in START_WORDS and d < VISIBLE}
    assert not faint, f"words that barely show from the start scene (need >= {VISIBLE}): {faint}"


def test_snapshots_are_deterministic_per_seed() -> None:
    from synesthesia.world.procedural import settled_snapshot

    words = {"fire": 0.7, "snow": 0.9, "blue": 0.5}
    a = settled_snapshot(words, (320, 176), seed=3)
    assert np.array_equal(a, settled_snapshot(words, (320, 176), seed=3))
    assert not np.array_equal(a, settled_snapshot(words, (320, 176), seed=4))


def test_combinations_compose() -> None:
    storm = settled_frame(["storm"])
    night = settled_frame(["night"])
    both = settled_frame(["storm", "mountains", "night"])
    assert distance(both, storm) > 1.0 and distance(both, night) > 1.0
    scene = _native.WorldScene(0.3, 0.35)
    scene.apply([("storm", 1.0), ("mountains", 1.0), ("night", 1.0)])
    state = dict(zip(STATE_NAMES, scene.target()))
    assert state["storm"] == 1.0 and state["mountains"] == 1.0 and state["night"] == 1.0
    assert state["rain"] > 0.5 and state["lightning"] > 0.5


def test_first_frame_moves_at_once_then_eases() -> None:
    world = ProceduralBackend(*SIZE, tau=0.5, jump=0.35)
    world.poll(0)
    world.apply(Intent({"ocean": 1.0}, trace_id="a"))
    assert math.isclose(world.state()["ocean"], 0.35, abs_tol=1e-5)
    world.poll(40 * MS)
    first = world.state()["ocean"]
    for i in range(2, 60):
        world.poll(i * 40 * MS)
    assert 0.35 < first < 0.5 < world.state()["ocean"] > 0.99


@pytest.mark.parametrize(
    ("intent", "reason"),
    [
        (Intent({"volcano": 1.0}), "unknown word"),
        (Intent({"rain": float("nan")}), "must be in (0, 1]"),
        (Intent({"rain": 2.0}), "must be in (0, 1]"),
        (Intent({"rain": 0.0}), "must be in (0, 1]"),
        (Intent({}, prompt="x" * 5000), "prompt too long"),
        (Intent({}), "empty intent"),
        (Intent({w: 1.0 for w in [f"w{i}" for i in range(40)]}), "too many keywords"),
        ("rain", "expected an Intent"),
    ],
)
def test_bad_intents_are_rejected_with_a_reason(intent: object, reason: str) -> None:
    world = ProceduralBackend(*SIZE)
    before = world.target()
    with pytest.raises(IntentRejected) as info:
        world.apply(intent)  # type: ignore[arg-type]
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)
    assert world.target() == before
    validate_intent(Intent({"rain": 0.5}), frozenset(VOCABULARY))


def test_renderer_checks_its_arguments() -> None:
    state = _native.world_default_state()
    with pytest.raises(KernelArgumentError, match="state"):
        render_state(state[:-1], 0.0, SIZE)
    with pytest.raises(KernelArgumentError, match="not finite"):
        render_state([float("nan")] + state[1:], 0.0, SIZE)
    with pytest.raises(KernelArgumentError, match="channels"):
        _native.WorldRenderer(0).render_into(np.zeros((64, 64, 4), np.uint8), state, 0.0)
    # Strided output: render into a region of a bigger frame, leaving the border untouched.
    big = np.zeros((200, 360, 3), np.uint8)
    render_state(state, 1.0, SIZE, out=big[10:186, 20:340])
    assert big[:10].max() == 0 and big[10:186, 20:340].max() > 0


def test_spectral_pulse_bands_and_the_picture() -> None:
    t = np.arange(2048, dtype=np.float32) / 16000
    for band, hz in enumerate((120, 500, 2000, 6000)):
        bands = spectral_pulse((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        assert int(np.argmax(bands[:4])) == band
    assert spectral_pulse(np.zeros(1024, np.float32))[4] == 0.0
    with pytest.raises(KernelArgumentError, match="NaN"):
        spectral_pulse(np.full(512, np.nan, np.float32))
    # Sound modulates the frame directly (same state, same time).
    state = _native.world_default_state()
    quiet = render_state(state, 3.0, SIZE)
    loud = render_state(state, 3.0, SIZE, pulse=[1.0, 1.0, 1.0, 1.0, 1.0])
    assert distance(quiet, loud) > 1.0
    world = ProceduralBackend(*SIZE)
    world.poll(0)
    silent = world.poll(40 * MS).pixels.copy()
    world2 = ProceduralBackend(*SIZE)
    world2.poll(0)
    world2.feed_audio((0.8 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))
    assert distance(silent, world2.poll(40 * MS).pixels) > 0.2
