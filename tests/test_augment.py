import numpy as np
import pytest

from espressivo import EspressivoError, Performance
from espressivo.data.augment import Augmentation


def test_augmentation_is_seeded_and_keeps_the_keyboard():
    perf = Performance.from_arrays([0.0, 1.0], [0.5, 0.5], [22, 100], [60, 120])
    aug = Augmentation(transpose=6, stretch=0.1, velocity_shift=10, velocity_scale=0.2)
    a = aug(perf, np.random.default_rng(3))
    b = aug(perf, np.random.default_rng(3))
    assert a.notes.tolist() == b.notes.tolist()
    seen = set()
    for seed in range(200):
        out = aug(perf, np.random.default_rng(seed))
        shift = int(out.notes["pitch"][0]) - 22
        seen.add(shift)
        assert len(out) == 2 and out.notes["pitch"].min() >= 21 and out.notes["pitch"].max() <= 108
        assert 0.9 - 1e-9 <= out.notes["onset_sec"][1] <= 1.1 + 1e-9
        assert out.notes["velocity"].min() >= 1 and out.notes["velocity"].max() <= 127
    assert seen == set(range(-1, 7))  # down by at most 1 (A#0 -> A0), up to 6 (E7 + 6 = A#7)


def test_no_augmentation_is_identity_and_bad_settings_refused():
    perf = Performance.from_arrays([0.0], [0.5], [60], [60])
    assert Augmentation()(perf, np.random.default_rng(0)) is perf
    with pytest.raises(EspressivoError):
        Augmentation(stretch=0.7)
