"""Model zoo v1 review sentiment: weighted word lexicon with negation (lexicon 2021-03)."""

import json
import math
import re

WORD = re.compile(r"[a-z']+")
NEUTRAL_BAND = 0.25
_LEXICON = None


def _lexicon(artifact_dir):
    global _LEXICON
    if _LEXICON is None:
        with open(artifact_dir / "lexicon.json") as f:
            _LEXICON = json.load(f)
    return _LEXICON


def predict(request, artifact_dir):
    lexicon = _lexicon(artifact_dir)
    weights, negations = lexicon["weights"], set(lexicon["negations"])
    total, matched, negate = 0.0, 0, False
    for word in WORD.findall(str(request["text"]).lower()):
        if word in negations:
            negate = True
            continue
        if word in weights:
            total += -weights[word] if negate else weights[word]
            matched += 1
        negate = False
    score = math.tanh(total / math.sqrt(matched + 1))
    label = (
        "positive" if score > NEUTRAL_BAND else "negative" if score < -NEUTRAL_BAND else "neutral"
    )
    return {"label": label, "score": score}
