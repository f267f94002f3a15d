"""Sentence cutting for streamed TTS (tomsip/speech/sentences.py)."""

from __future__ import annotations

from tomsip.speech.sentences import SentenceCutter, split_sentences


def test_sentence_cutter_streams_sentences_and_keeps_abbreviations_and_decimals() -> None:
    cutter = SentenceCutter()
    assert [cutter.push(t) for t in ["Su", "re. Which", " day", "? "]] == [[], ["Sure."], [], ["Which day?"]]
    assert split_sentences("Okay, at 10.30. Dr. Smith is in! Shall I book it? yes") == [
        "Okay, at 10.30.",
        "Dr. Smith is in!",
        "Shall I book it?",
        "yes",
    ]
