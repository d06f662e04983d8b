"""Model zoo v1 extractive summarizer: sentences ranked by mean content-word frequency."""

import re
from collections import Counter

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-z0-9']+")
DEFAULT_MAX_SENTENCES = 2
_STOPWORDS = None


def _stopwords(artifact_dir):
    global _STOPWORDS
    if _STOPWORDS is None:
        text = (artifact_dir / "stopwords.txt").read_text()
        _STOPWORDS = frozenset(line.strip() for line in text.splitlines() if line.strip())
    return _STOPWORDS


def summarize(request, artifact_dir):
    stopwords = _stopwords(artifact_dir)
    max_sentences = int(request.get("max_sentences", DEFAULT_MAX_SENTENCES))
    if max_sentences < 1:
        raise ValueError("max_sentences must be at least 1")
    text = str(request["text"]).strip()
    sentences = [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
    words = [[w for w in WORD.findall(s.lower()) if w not in stopwords] for s in sentences]
    counts = Counter(w for ws in words for w in ws)
    top = max(counts.values()) if counts else 1
    scores = [sum(counts[w] / top for w in ws) / len(ws) if ws else 0.0 for ws in words]
    chosen = sorted(sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:max_sentences])
    return {
        "summary": " ".join(sentences[i] for i in chosen),
        "sentence_scores": scores,
        "selected": chosen,
    }
