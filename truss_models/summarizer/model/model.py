"""Extractive summarizer: rank sentences by the average frequency of their content words.

Word frequencies are normalised by the most frequent content word; a sentence scores the
mean of its words' frequencies; the best max_sentences are returned in document order.
"""

from collections import Counter
from pathlib import Path

from model.text_utils import content_words, split_sentences


class Model:
    def __init__(self, **kwargs):
        self._data_dir = Path(kwargs["data_dir"])
        metadata = kwargs["config"].get("model_metadata", {})
        self._default_max_sentences = int(metadata.get("default_max_sentences", 2))
        self._stopwords = None

    def load(self):
        text = (self._data_dir / "stopwords.txt").read_text()
        self._stopwords = frozenset(line.strip() for line in text.splitlines() if line.strip())

    def predict(self, model_input):
        max_sentences = int(model_input.get("max_sentences", self._default_max_sentences))
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        sentences = split_sentences(str(model_input["text"]))
        words = [content_words(sentence, self._stopwords) for sentence in sentences]
        frequencies = Counter(word for sentence_words in words for word in sentence_words)
        top = max(frequencies.values(), default=1)
        scores = [
            sum(frequencies[word] / top for word in sentence_words) / len(sentence_words)
            if sentence_words
            else 0.0
            for sentence_words in words
        ]
        ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
        chosen = sorted(ranked[:max_sentences])
        return {
            "summary": " ".join(sentences[i] for i in chosen),
            "sentence_scores": scores,
            "selected": chosen,
        }
