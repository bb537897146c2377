"""`Objectives` owns the minimise form: of a trial's metrics, of a table's columns and of the
reference values (other modules never multiply by a sign themselves)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.objectives import Objective, Objectives

OBJECTIVES = Objectives((Objective("accuracy", "max", ref=0.5), Objective("latency_ms", "min")))


def test_a_tables_columns_and_its_rows_give_the_same_minimise_form() -> None:
    rows = [{"accuracy": 0.8, "latency_ms": 3.0}, {"accuracy": 0.6, "latency_ms": 1.5}]
    columns = [[r["accuracy"] for r in rows], np.array([r["latency_ms"] for r in rows])]
    np.testing.assert_array_equal(OBJECTIVES.columns_to_minimise(columns), OBJECTIVES.matrix(rows))
    np.testing.assert_array_equal(OBJECTIVES.columns_to_minimise(columns), [[-0.8, 3.0], [-0.6, 1.5]])
    with pytest.raises(ValueError, match="one column per objective"):
        OBJECTIVES.columns_to_minimise(columns[:1])


def test_reference_bounds_count_every_value_where_no_reference_is_set() -> None:
    bounds = OBJECTIVES.ref_bounds()
    assert bounds[0] == -0.5 and math.isinf(bounds[1]) and bounds[1] > 0
    assert OBJECTIVES.ref_point() is None  # a point needs every reference, or the points to fill them from
