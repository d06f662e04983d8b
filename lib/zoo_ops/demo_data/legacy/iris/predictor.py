"""Model zoo v1 iris classifier: nearest centroid with softmax confidences, pure Python."""

import json
import math

_PARAMS = None


def _params(artifact_dir):
    global _PARAMS
    if _PARAMS is None:
        with open(artifact_dir / "centroids.json") as f:
            _PARAMS = json.load(f)
    return _PARAMS


def predict(request, artifact_dir):
    params = _params(artifact_dir)
    centroids = params["centroids"]
    temperature = params["temperature"]
    predictions, probabilities = [], []
    for row in request["instances"]:
        if len(row) != len(centroids[0]):
            raise ValueError(f"instances must be rows of {len(centroids[0])} measurements (cm)")
        logits = [
            -sum((float(x) - c) ** 2 for x, c in zip(row, centroid, strict=True)) / temperature
            for centroid in centroids
        ]
        top = max(logits)
        weights = [math.exp(logit - top) for logit in logits]
        total = sum(weights)
        probs = [w / total for w in weights]
        predictions.append(params["classes"][probs.index(max(probs))])
        probabilities.append(probs)
    return {"predictions": predictions, "probabilities": probabilities}
