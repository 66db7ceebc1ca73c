"""Datasets: (n)ASAP (aligned scores and performances), SUPRA piano rolls, any folder of MIDI files."""

from espressivo.data.asap import AsapDataset, AsapPerformance, default_data_root
from espressivo.data.folder import MidiFile, MidiFolder, supra

__all__ = ["AsapDataset", "AsapPerformance", "MidiFile", "MidiFolder", "default_data_root", "supra"]
