"""Listening: render a performance to audio with a real piano soundfont."""

from espressivo.audio.synth import find_soundfont, synthesize, wav_stats

__all__ = ["find_soundfont", "synthesize", "wav_stats"]
