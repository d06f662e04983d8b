"""Review sentiment from a weighted word lexicon, with negation.

The lexicon is a snapshot of a gated Hugging Face dataset, bundled in data/ so that
nothing is downloaded at start-up. The hf_access_token secret is still checked when it
is provided, so a deployment with a wrong token fails at load, not later.
"""

import json
import math
import re
from pathlib import Path

WORD = re.compile(r"[a-z']+")
NEUTRAL_BAND = 0.25


class Model:
    def __init__(self, config, data_dir, secrets):
        self._data_dir = Path(data_dir)
        self._secrets = secrets
        self._lexicon = None
        self._negations = None

    def load(self):
        token = self._secrets.get("hf_access_token")
        if token is not None and not token.startswith("hf_"):
            raise ValueError("secret hf_access_token is not a Hugging Face token (hf_...)")
        lexicon = json.loads((self._data_dir / "lexicon.json").read_text())
        self._lexicon = dict(lexicon["weights"])
        self._negations = frozenset(lexicon["negations"])

    def predict(self, model_input):
        words = WORD.findall(str(model_input["text"]).lower())
        total, matched, negate = 0.0, 0, False
        for word in words:
            if word in self._negations:
                negate = True
                continue
            if word in self._lexicon:
                weight = self._lexicon[word]
                total += -weight if negate else weight
                matched += 1
            negate = False
        score = math.tanh(total / math.sqrt(matched + 1))
        if score > NEUTRAL_BAND:
            label = "positive"
        elif score < -NEUTRAL_BAND:
            label = "negative"
        else:
            label = "neutral"
        return {"label": label, "score": score}
