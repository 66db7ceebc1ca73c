"""espressivo: expressive piano performance — data model, I/O, datasets, models and rendering."""

from espressivo.core import Alignment, Performance, Score
from espressivo.errors import EspressivoError
from espressivo.io import read_alignment, read_midi, read_score, write_midi

__version__ = "0.1.0"

__all__ = [
    "Alignment",
    "EspressivoError",
    "Performance",
    "Score",
    "__version__",
    "read_alignment",
    "read_midi",
    "read_score",
    "write_midi",
]
