"""Evaluation: language-model likelihood and feature analyses (later: rendering against human pianists)."""

from espressivo.evaluate.lm import feature_report, histograms, js_distance, melody_lead, pitch_velocity_fits, window_nll

__all__ = ["feature_report", "histograms", "js_distance", "melody_lead", "pitch_velocity_fits", "window_nll"]
