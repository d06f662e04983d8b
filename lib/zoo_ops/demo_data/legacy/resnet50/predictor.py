"""Model zoo v1 image classifier: a linear head over a normalised 8x8 grayscale image."""

import json
import math

TOP_K = 3
_WEIGHTS = None


def _weights(artifact_dir):
    global _WEIGHTS
    if _WEIGHTS is None:
        with open(artifact_dir / "weights.json") as f:
            _WEIGHTS = json.load(f)
    return _WEIGHTS


def predict(request, artifact_dir):
    weights = _weights(artifact_dir)
    size = weights["image_size"]
    image = request["image"]
    if len(image) != size or any(len(row) != size for row in image):
        raise ValueError(f"image must be {size}x{size} grayscale pixels (0-255)")
    pixels = [float(value) / 255.0 for row in image for value in row]
    brightness = sum(pixels) / len(pixels)
    pattern = [p - brightness for p in pixels]
    norm = math.sqrt(sum(p * p for p in pattern))
    pattern = [p / norm for p in pattern] if norm > 1e-9 else [0.0] * len(pattern)
    logits = [
        weights["pattern_scale"] * sum(t * p for t, p in zip(template, pattern, strict=True))
        + weights["brightness_weights"][k] * brightness
        + weights["biases"][k]
        for k, template in enumerate(weights["pattern_templates"])
    ]
    top = max(logits)
    exps = [math.exp(logit - top) for logit in logits]
    total = sum(exps)
    scores = [e / total for e in exps]
    ranked = sorted(
        zip(weights["labels"], scores, strict=True), key=lambda item: (-round(item[1], 9), item[0])
    )
    return {"predictions": [{"label": label, "score": score} for label, score in ranked[:TOP_K]]}
