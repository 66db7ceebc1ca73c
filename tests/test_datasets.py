"""(n)ASAP, SUPRA and MIDI-folder loaders."""

import warnings

import pytest

from espressivo import EspressivoError
from espressivo.data import AsapDataset, MidiFolder, supra


def test_every_asap_row_loads_or_is_reported(asap_root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asap = AsapDataset(asap_root)
    # one warning for the skipped rows, one for the repaired ones: reported once each
    assert len([w for w in caught if "skipped" in str(w.message)]) == 1
    assert len(asap) + len(asap.skipped) == 1066
    assert len(asap.skipped) == 3 and len(asap.repaired) == 28
    strict = AsapDataset(asap_root, repair=False, quiet=True)
    assert len(strict.skipped) == 31 and len(strict) == 1035


def test_splits_are_by_piece(asap):
    pieces = {split: set(asap.pieces(split)) for split in ("train", "validation", "test")}
    assert len(pieces["train"] & pieces["test"]) == 0 and len(pieces["validation"] & pieces["test"]) == 0
    assert len(pieces["test"]) == 23 and len(pieces["validation"]) == 20
    assert len(asap.performances("test")) == 104 and len(asap.performances("validation")) == 83
    with pytest.raises(EspressivoError):
        asap.performances("dev")


def test_all_asap_performances_read(asap):
    """Every performance file of every kept row is readable (fast path, symusic)."""
    from espressivo import read_midi

    total = 0
    for item in asap:
        total += len(read_midi(item.performance_path))
    assert total > 3_000_000


def test_lazy_loading_and_metadata(asap):
    item = next(i for i in asap.performances("test") if i.score_format == "musicxml")
    assert item.composer and item.title and item.performer and item.split == "test"
    perf, score, alignment = item.load_performance(), item.load_score(), item.load_alignment()
    assert len(perf) > 0 and len(score) > 0 and len(alignment.matches) > 0
    robust = asap.performances(robust_only=True)
    assert 0 < len(robust) < len(asap)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(EspressivoError, match="not found"):
        AsapDataset(tmp_path / "nowhere")
    with pytest.raises(EspressivoError, match=r"metadata\.csv"):
        AsapDataset(tmp_path)


def test_supra(supra_root):
    rolls = supra(supra_root)
    assert len(rolls) == 456
    perf = rolls.items[0].load_performance()
    assert len(perf) > 0


def test_midi_folder_skips_and_counts_bad_files(tmp_path, asap_root):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "good.mid").write_bytes((asap_root / "Bach/Fugue/bwv_846/Shi05M.mid").read_bytes())
    (tmp_path / "bad.mid").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("ignored")
    folder = MidiFolder(tmp_path)
    assert [i.name for i in folder] == ["bad.mid", "sub/good.mid"]
    loaded = list(folder.iter_performances())
    assert len(loaded) == 1 and len(folder.failed) == 1


def test_pieces_without_musicxml_are_flagged(asap):
    no_xml = [i for i in asap if not i.alignment_fits_score]
    assert {i.folder for i in no_xml} == {"Liszt/Mephisto_Waltz", "Liszt/Sonata", "Schubert/Wanderer_fantasie"}
    assert all(i.score_path.name == "midi_score.mid" for i in no_xml)
