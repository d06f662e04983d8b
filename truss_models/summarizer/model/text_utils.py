"""Sentence splitting and tokenising shared by the summarizer."""

import re

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"[a-z0-9']+")


def split_sentences(text):
    return [sentence.strip() for sentence in SENTENCE_END.split(text.strip()) if sentence.strip()]


def content_words(sentence, stopwords):
    return [word for word in WORD.findall(sentence.lower()) if word not in stopwords]
