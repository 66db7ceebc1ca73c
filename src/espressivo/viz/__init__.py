"""Looking: piano rolls with pedal lanes, and tempo/velocity curves of a performance against its score."""

from espressivo.viz.curves import expression_curves
from espressivo.viz.plot import plot_pair, plot_performance

__all__ = ["expression_curves", "plot_pair", "plot_performance"]
