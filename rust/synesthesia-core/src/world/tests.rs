use super::*;
use crate::image::ImageViewMut;

fn render(state: &SceneState, t: f64, w: usize, h: usize) -> Vec<u8> {
    let mut buf = vec![0u8; w * h * 3];
    let mut view = ImageViewMut::packed(&mut buf, w, h, 3).unwrap();
    Renderer::new(7).render(state, t, &Pulse::default(), &mut view).unwrap();
    buf
}

#[test]
fn same_inputs_same_bytes() {
    let mut scene = Scene::new(SceneState::default(), 0.5, 0.35).unwrap();
    scene.apply(&[("storm", 1.0), ("night", 1.0)]).unwrap();
    scene.advance(0.3).unwrap();
    let a = render(scene.current(), 3.25, 320, 176);
    let b = render(scene.current(), 3.25, 320, 176);
    assert_eq!(a, b);
    assert_ne!(a, render(scene.current(), 3.5, 320, 176));
}

#[test]
fn every_word_moves_the_state() {
    // The default already is mountains at sunset: start those two words elsewhere.
    let mut elsewhere = Scene::new(SceneState::default(), 0.5, 0.35).unwrap();
    elsewhere.apply(&[("ocean", 1.0), ("day", 1.0)]).unwrap();
    elsewhere.settle();
    for (word, _) in VOCABULARY {
        let base = if matches!(*word, "mountains" | "sunset") { *elsewhere.target() } else { SceneState::default() };
        let mut scene = Scene::new(base, 0.5, 0.35).unwrap();
        scene.apply(&[(word, 1.0)]).unwrap();
        assert_ne!(scene.target(), &base, "{word} did not move the target");
        assert_ne!(scene.current(), &base, "{word} did not jump");
    }
}

#[test]
fn bad_words_and_weights_are_rejected_without_change() {
    let mut scene = Scene::new(SceneState::default(), 0.5, 0.35).unwrap();
    assert!(scene.apply(&[("volcano", 1.0)]).is_err());
    assert!(scene.apply(&[("rain", f32::NAN)]).is_err());
    assert!(scene.apply(&[("rain", 0.5), ("snow", 2.0)]).is_err());
    assert_eq!(scene.target(), &SceneState::default());
}

#[test]
fn easing_converges_and_jump_is_immediate() {
    let mut scene = Scene::new(SceneState::default(), 0.5, 0.35).unwrap();
    scene.apply(&[("ocean", 1.0)]).unwrap();
    let first = scene.current().get(p::OCEAN);
    assert!((first - 0.35).abs() < 1e-5);
    for _ in 0..100 {
        scene.advance(0.04).unwrap();
    }
    assert!((scene.current().get(p::OCEAN) - 1.0).abs() < 1e-3);
}

#[test]
fn pulse_finds_the_band_of_a_tone() {
    let tone =
        |f: f32| (0..1024).map(|i| 0.5 * (std::f32::consts::TAU * f * i as f32 / 16000.0).sin()).collect::<Vec<_>>();
    for (band, f) in [(0, 120.0), (1, 500.0), (2, 2000.0), (3, 6000.0)] {
        let p = spectral_pulse(&tone(f), 16000).unwrap();
        let loudest = (0..4).max_by(|&a, &b| p.bands[a].total_cmp(&p.bands[b])).unwrap();
        assert_eq!(loudest, band, "{f} Hz: {:?}", p.bands);
    }
    let silent = spectral_pulse(&vec![0.0; 1024], 16000).unwrap();
    assert_eq!(silent.level, 0.0);
    assert!(spectral_pulse(&[f32::NAN; 256], 16000).is_err());
}

#[test]
fn odd_sizes_and_strides_render() {
    let (w, h, stride) = (97, 61, 97 * 3 + 5);
    let mut buf = vec![0u8; stride * h];
    let mut view = ImageViewMut::new(&mut buf, w, h, 3, stride).unwrap();
    let mut s = SceneState::default();
    for v in s.values.iter_mut().take(19) {
        *v = 1.0;
    }
    Renderer::new(1).render(&s, 10.0, &Pulse { bands: [1.0; 4], level: 1.0 }, &mut view).unwrap();
}

#[test]
fn sizes_are_checked_and_extremes_render() {
    let state = SceneState::default();
    let mut r = Renderer::new(3);
    for (w, h) in [(32, 32), (33, 500), (1920, 1056)] {
        let mut buf = vec![0u8; w * h * 3];
        let mut view = ImageViewMut::packed(&mut buf, w, h, 3).unwrap();
        r.render(&state, 1e7, &Pulse::default(), &mut view).unwrap();
    }
    let mut buf = vec![0u8; 31 * 40 * 3];
    let mut view = ImageViewMut::packed(&mut buf, 31, 40, 3).unwrap();
    assert!(r.render(&state, 0.0, &Pulse::default(), &mut view).is_err());
    let mut buf = vec![0u8; 64 * 64 * 3];
    let mut view = ImageViewMut::packed(&mut buf, 64, 64, 3).unwrap();
    assert!(r.render(&state, f64::NAN, &Pulse::default(), &mut view).is_err());
}

#[test]
fn every_vocabulary_combination_of_two_renders() {
    let mut buf = vec![0u8; 96 * 64 * 3];
    let mut r = Renderer::new(9);
    for (a, _) in VOCABULARY {
        for (b, _) in VOCABULARY {
            let mut scene = Scene::new(SceneState::default(), 0.5, 0.35).unwrap();
            scene.apply(&[(a, 1.0), (b, 0.7)]).unwrap();
            scene.settle();
            let mut view = ImageViewMut::packed(&mut buf, 96, 64, 3).unwrap();
            r.render(scene.current(), 12.85, &Pulse { bands: [0.5; 4], level: 0.5 }, &mut view).unwrap();
        }
    }
}
