"""Image classifier: a linear head over a normalised 8x8 grayscale image.

preprocess turns pixels (0-255) into a unit-norm pattern plus mean brightness, predict
scores every label, postprocess keeps the top k (model_metadata.top_k in config.yaml).
"""

import json
from pathlib import Path

import numpy as np


class Model:
    def __init__(self, config, data_dir):
        self._top_k = int(config.get("model_metadata", {}).get("top_k", 3))
        self._data_dir = Path(data_dir)
        self._weights = None

    def load(self):
        weights = json.loads((self._data_dir / "weights.json").read_text())
        self._size = int(weights["image_size"])
        self._labels = list(weights["labels"])
        self._templates = np.asarray(weights["pattern_templates"], dtype=np.float64)
        self._pattern_scale = float(weights["pattern_scale"])
        self._brightness_weights = np.asarray(weights["brightness_weights"], dtype=np.float64)
        self._biases = np.asarray(weights["biases"], dtype=np.float64)

    def preprocess(self, request):
        pixels = np.asarray(request["image"], dtype=np.float64)
        if pixels.shape != (self._size, self._size):
            raise ValueError(f"image must be {self._size}x{self._size} grayscale pixels (0-255)")
        pixels = pixels.reshape(-1) / 255.0
        brightness = pixels.sum() / pixels.size
        pattern = pixels - brightness
        norm = np.sqrt((pattern * pattern).sum())
        if norm > 1e-9:
            pattern = pattern / norm
        else:
            pattern = np.zeros_like(pattern)
        return {"pattern": pattern, "brightness": brightness}

    def predict(self, features):
        logits = (
            self._pattern_scale * (self._templates @ features["pattern"])
            + self._brightness_weights * features["brightness"]
            + self._biases
        )
        logits -= logits.max()
        weights = np.exp(logits)
        return weights / weights.sum()

    def postprocess(self, probabilities):
        # Rounded scores as the sort key, so labels that tie stay in a stable order.
        ranked = sorted(
            zip(self._labels, probabilities.tolist(), strict=True),
            key=lambda item: (-round(item[1], 9), item[0]),
        )
        return {
            "predictions": [
                {"label": label, "score": score} for label, score in ranked[: self._top_k]
            ]
        }
