"""Each shipped model still gives, on a small fixed set, the figures recorded in its card when it shipped
(espressivo.evaluate.regression): a broken feature order, sampler or tokenizer fails here, not in a listener's ear.
A replaced model records its own figures (tools/ship_model.py)."""

from __future__ import annotations

import pytest

from espressivo.evaluate.regression import VALIDATION, compare_figures, regression_figures, regression_pieces
from espressivo.models.checkpoint import load_pretrained, shipped_models
from tests.conftest import DATA


@pytest.fixture(scope="module")
def pieces():
    found = regression_pieces(DATA / "asap")
    if len(found) < 1 + len(VALIDATION):
        pytest.skip("(n)ASAP's validation pieces not found: only the etude is checked")
    return found


@pytest.mark.parametrize("name", shipped_models())
def test_shipped_model_keeps_its_figures(name, pieces):
    pretrained = load_pretrained(name)
    recorded = pretrained.config.get("regression")
    assert recorded, f"{name} has no regression figures: python tools/regression_figures.py {name} --write"
    measured = regression_figures(pretrained, pieces=pieces)
    assert set(measured) == set(recorded)
    assert compare_figures(recorded, measured) == []
