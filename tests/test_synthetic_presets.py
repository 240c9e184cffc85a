"""Synthetic presets and their calibration: validated numbers, the documented four, and first-pass
probabilities whose mean over HumanEval is exactly the preset's promise. Nothing here runs code."""

from __future__ import annotations

from dataclasses import replace

import pytest

from neatpipe.bench import load_humaneval
from neatpipe.models import SpecError
from neatpipe.synthetic import (
    PRESETS,
    REFERENCE_TEMPERATURE,
    REPAIR_KINDS,
    FaultWeights,
    RepairRates,
    first_pass_probability,
    preset_named,
)
from neatpipe.synthetic.calibration import fixability, relative_understanding
from neatpipe.synthetic.presets import repair_kind


@pytest.fixture(scope="module")
def humaneval():
    return load_humaneval()


def test_presets_are_the_documented_four_and_validate() -> None:
    assert list(PRESETS) == ["small-1.5b", "coder-1.5b", "general-3b", "coder-3b"]
    rates = [PRESETS[n].first_pass for n in PRESETS]
    assert rates == sorted(rates)
    for preset in PRESETS.values():
        weights = preset.faults.as_dict()
        assert max(weights, key=weights.get) == "assertion"  # AssertionError dominates first failures
        assert preset.repair.name > 3 * preset.repair.assertion
        assert preset.repair.syntax > 3 * preset.repair.assertion
    assert PRESETS["coder-3b"].regression < PRESETS["general-3b"].regression


def test_invalid_preset_numbers_name_the_field() -> None:
    with pytest.raises(ValueError, match="regression must be a probability in \\[0, 1\\], got 1.5"):
        replace(PRESETS["general-3b"], regression=1.5)
    with pytest.raises(ValueError, match="fault weight name must be a finite number >= 0, got -1"):
        FaultWeights(name=-1, syntax=0, assertion=1, type=0)
    with pytest.raises(ValueError, match="fault weights must not all be 0"):
        FaultWeights(0, 0, 0, 0)
    with pytest.raises(ValueError, match="repair rates: other must be a probability"):
        RepairRates(0.1, 0.1, 0.1, 0.1, other=2)


def test_an_unknown_preset_name_is_a_spec_error_listing_the_presets() -> None:
    assert preset_named("coder-3b") is PRESETS["coder-3b"]
    with pytest.raises(SpecError, match="unknown synthetic preset 'x'; presets: small-1.5b, coder-1.5b"):
        preset_named("x")


def test_reported_error_types_map_to_repair_kinds() -> None:
    assert [repair_kind(t) for t in ("UnboundLocalError", "IndentationError", "AssertionError")] == [
        "name",
        "syntax",
        "assertion",
    ]
    assert repair_kind("IndexError") == repair_kind(None) == repair_kind("") == "other"
    assert {repair_kind(t) for t in ("NameError", "SyntaxError", "TypeError", "Timeout")} <= set(REPAIR_KINDS)


def test_calibration_is_exact_in_expectation(humaneval) -> None:
    for preset in PRESETS.values():
        for temperature in (0.0, 0.8):
            mean = sum(first_pass_probability(preset, p, temperature) for p in humaneval) / len(humaneval)
            assert mean == pytest.approx(preset.first_pass, abs=1e-6)


def test_repair_factors_average_one_over_what_they_average(humaneval) -> None:
    """Fixability has mean 1 over problems; a preset's relative understanding has mean 1 over its own
    failures (weighted by the chance of failing, at the temperature where the curve's slope is the preset's
    sharpness), so the preset's repair rates hold on average."""
    problems = list(humaneval)
    assert sum(fixability(p) for p in problems) / len(problems) == pytest.approx(1.0, abs=0.2)
    for preset in PRESETS.values():
        fail = [1 - first_pass_probability(preset, p, REFERENCE_TEMPERATURE) for p in problems]
        weighted = sum(f * relative_understanding(preset, p) for f, p in zip(fail, problems, strict=True))
        assert weighted / sum(fail) == pytest.approx(1.0, abs=1e-9)
