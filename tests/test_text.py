"""Tokens and the sentence layer (benchmark.text); the doctests there cover the basic cases."""

from __future__ import annotations

import random
import re

from benchmark.text import sentence_spans, tokenize


def test_tokens_match_caml_rule():
    # CAML: RegexpTokenizer(r"\w+"), lowercased, `not t.isnumeric()`.
    text = "BP 120/80, HR 72. Vit B12 given; 2nd dose at 0800 (pt_id 7). Temp 98.6F"
    expected = [t.lower() for t in re.findall(r"\w+", text) if not t.isnumeric()]
    assert tokenize(text) == expected
    assert tokenize(text) == ["bp", "hr", "vit", "b12", "given", "2nd", "dose", "at", "pt_id", "temp", "6f"]


def test_single_newline_is_not_a_boundary_but_blank_line_is():
    note = ("The patient is a 64 year old woman with a history of\n"
            "hypertension and diabetes who presented with chest pain\n"
            "radiating to the left arm\n\n"
            "She was started on heparin")
    pieces = [note[s:e] for s, e in sentence_spans(note)]
    assert pieces == [note.split("\n\n")[0], "She was started on heparin"]


def test_headers_are_sentences_of_their_own():
    note = ("HISTORY OF PRESENT ILLNESS: 64F with CP.\nMajor Surgical or Invasive Procedure:\nCABG x3\n"
            "Discharge Medications:\n1. Aspirin 81 mg PO DAILY\n2. Lasix 40 mg PO BID\n"
            "Admission Date:  [**2151-7-16**]     Discharge Date:   [**2151-8-4**]")
    pieces = [note[s:e] for s, e in sentence_spans(note)]
    assert pieces == [
        "HISTORY OF PRESENT ILLNESS:", "64F with CP.", "Major Surgical or Invasive Procedure:", "CABG x3",
        "Discharge Medications:", "1. Aspirin 81 mg PO DAILY\n2. Lasix 40 mg PO BID",
        # a header in mid-line (Discharge Date) does not split: only line-initial headers do
        "Admission Date:", "[**2151-7-16**]     Discharge Date:   [**2151-8-4**]",
    ]


def test_stops_ignore_abbreviations_list_numbers_and_decimals():
    note = "1. Metoprolol 12.5 mg p.o. b.i.d. per Dr. Smith vs. placebo. Next sentence! And? Last"
    pieces = [note[s:e] for s, e in sentence_spans(note)]
    assert pieces == ["1. Metoprolol 12.5 mg p.o. b.i.d. per Dr. Smith vs. placebo.", "Next sentence!", "And?", "Last"]


def _random_note(rng: random.Random) -> str:
    words = ["pain", "CHF", "[**Hospital1 18**]", "12.5", "mg", "p.o.", "Dr.", "x3", "s/p", "-", "==", "n't"]
    parts = []
    for _ in range(rng.randint(0, 120)):
        parts.append(rng.choice(words + ["\n", "\n\n", ". ", "Discharge Diagnosis:", "\n1. ", "?", " "]))
        parts.append(" " if rng.random() < 0.8 else "")
    return "".join(parts)


def test_sentences_partition_the_tokens():
    """Every token lies in exactly one span; spans are ordered, disjoint and stripped."""
    rng = random.Random(7)
    for _ in range(300):
        note = _random_note(rng)
        spans = sentence_spans(note)
        assert all(0 <= s < e <= len(note) for s, e in spans)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))
        assert all(note[s:e] == note[s:e].strip() for s, e in spans)
        assert [t for s, e in spans for t in tokenize(note[s:e])] == tokenize(note)


def test_ascii_fast_path_equals_the_rule():
    rng = random.Random(3)
    alphabet = "ab Z_09.\n-"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert tokenize(text) == [t.lower() for t in re.findall(r"\w+", text) if not t.isnumeric()], text
