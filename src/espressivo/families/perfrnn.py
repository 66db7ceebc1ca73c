"""Performance RNN (Oore et al.): an LSTM over the 413-event ``performance-rnn`` vocabulary that improvises."""

from espressivo.families.base import Family

FAMILY = Family(
    name="perfrnn",
    kind="language",
    summary="Performance RNN: an LSTM that improvises note events",
    config="espressivo.models.perfrnn:PerfRNNConfig",
    model="espressivo.models.perfrnn:PerfRNN",
    tasks=("lm",),
    card="espressivo.evaluate.cards:language_card",
)
