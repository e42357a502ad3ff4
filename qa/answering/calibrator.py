"""P(the answer is right) from a candidate's features: a logistic regression that travels with its reader.

Logistic regression, not gradient boosting: a few thousand labelled questions is little data, its
probabilities come out calibrated by construction (it minimises log loss), its weights say what it
learned (docs/trust.md and the model card list them), and applying it is a dot product with no library
at run time. It is stored in the reader's ``calibration.json`` under ``"calibrator"``, as the
features' names, their means and scales, the weights and the intercept.

Example:
    >>> cal = fit_calibrator(rows, labels)
    >>> cal.probability(rows[0])
    0.83
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from qa.answering.features import FEATURES


@dataclass(frozen=True)
class Calibrator:
    """``sigmoid(intercept + sum(coef * (x - mean) / scale))`` over the named features."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def logit(self, row: Mapping[str, float]) -> float:
        """The log-odds that one candidate is right; a feature missing from ``row`` counts as its mean."""
        z = self.intercept
        for name, mean, scale, coef in zip(self.features, self.mean, self.scale, self.coef):
            z += coef * (float(row.get(name, mean)) - mean) / scale
        return z

    def probability(self, row: Mapping[str, float]) -> float:
        """P(right) of one candidate; a feature missing from ``row`` counts as its mean."""
        z = self.logit(row)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def rescaled(self, slope: float, shift: float) -> "Calibrator":
        """The calibrator whose log-odds are ``slope * logit + shift`` (Platt scaling of this one): the same
        order of candidates when ``slope`` > 0, probabilities fitted elsewhere."""
        return Calibrator(self.features, self.mean, self.scale, tuple(slope * c for c in self.coef),
                          slope * self.intercept + shift)

    def weights(self) -> list[tuple[str, float]]:
        """Standardised weights, largest effect first (positive: more likely right)."""
        return sorted(zip(self.features, self.coef), key=lambda item: -abs(item[1]))

    def to_dict(self) -> dict:
        return {"kind": "logistic", **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Calibrator":
        """Raises ``ValueError`` for anything but a well-formed logistic calibrator."""
        if data.get("kind") != "logistic":
            raise ValueError(f"unknown calibrator kind {data.get('kind')!r}")
        fields = {k: tuple(float(x) for x in data[k]) for k in ("mean", "scale", "coef")}
        features = tuple(str(f) for f in data["features"])
        if not all(len(v) == len(features) for v in fields.values()) or any(s <= 0 for s in fields["scale"]):
            raise ValueError("calibrator arrays do not match its features")
        return cls(features, fields["mean"], fields["scale"], fields["coef"], float(data["intercept"]))


def fit_calibrator(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], c: float = 1.0,
                   features: Sequence[str] = FEATURES) -> Calibrator:
    """Fit on candidate feature rows and whether each candidate was right (scikit-learn, L2, ``C=c``).

    Raises:
        ValueError: fewer than two classes among ``labels``, or rows and labels of different lengths.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
    y = np.asarray(labels, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("the calibrator needs both right and wrong candidates to learn from")
    x = np.asarray([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return Calibrator(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()),
                      tuple(model.coef_[0].tolist()), float(model.intercept_[0]))
