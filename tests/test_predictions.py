"""The prediction-set format: a round trip, and damaged sets give a UserError rather than a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.predictions import Predictions, read_predictions, write_predictions


def _write(tmp_path):
    preds = Predictions(name="m-test", hadm_ids=np.array([11, 12]), codes=["428.0", "36.15"],
                        probs=np.array([[0.9, 0.2], [0.4, 0.6]], dtype=np.float32), run="m", split="test")
    return write_predictions(tmp_path / "m-test", preds)


def test_round_trip_keeps_sets_and_writes_caml_psv(tmp_path) -> None:
    back = read_predictions(_write(tmp_path))
    assert back.code_sets() == {11: ["428.0"], 12: ["36.15"]}
    assert (tmp_path / "m-test" / "predicted.psv").read_text() == "11|428.0\n12|36.15\n"
    assert read_predictions(tmp_path / "m-test" / "predicted.psv").code_sets() == back.code_sets()


@pytest.mark.parametrize("damage", ["missing probs", "truncated probs"])
def test_damaged_prediction_set_is_a_user_error(tmp_path, damage: str) -> None:
    directory = _write(tmp_path)
    probs = directory / "probs.npy"
    if damage == "missing probs":
        probs.unlink()
    else:
        probs.write_bytes(probs.read_bytes()[:20])
    with pytest.raises(UserError, match="incomplete prediction set"):
        read_predictions(directory)
