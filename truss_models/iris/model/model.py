"""Iris species classifier: distance to each species' mean measurements, softmaxed.

The centroids are the per-species means of Fisher's iris data, stored in
data/centroids.json so the model is the same bytes everywhere it is deployed.
"""

import json
from pathlib import Path

import numpy as np


class Model:
    def __init__(self, **kwargs):
        self._data_dir = Path(kwargs["data_dir"])
        self._config = kwargs["config"]
        self._classes = None
        self._centroids = None
        self._temperature = None

    def load(self):
        params = json.loads((self._data_dir / "centroids.json").read_text())
        self._classes = list(params["classes"])
        self._centroids = np.asarray(params["centroids"], dtype=np.float64)
        self._temperature = float(params["temperature"])

    def predict(self, model_input):
        instances = np.asarray(model_input["instances"], dtype=np.float64)
        if instances.ndim != 2 or instances.shape[1] != self._centroids.shape[1]:
            raise ValueError(
                f"instances must be rows of {self._centroids.shape[1]} measurements (cm)"
            )
        squared_distances = ((instances[:, None, :] - self._centroids[None, :, :]) ** 2).sum(axis=2)
        logits = -squared_distances / self._temperature
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        probabilities = weights / weights.sum(axis=1, keepdims=True)
        return {
            "predictions": [self._classes[i] for i in probabilities.argmax(axis=1)],
            "probabilities": probabilities.tolist(),
        }
