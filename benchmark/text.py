"""Note text: CAML-compatible tokens and a separate sentence layer.

Tokens follow caml-mimic's ``get_discharge_summaries.py`` exactly (``RegexpTokenizer(r"\\w+")``,
lowercased, tokens that are pure numbers dropped), so vocabularies and token counts compare with the
field's numbers. CAML's flat token stream lost the sentences, which RAC's sentence-permutation
augmentation needs, so :func:`sentence_spans` keeps them as character offsets into the unchanged text.

MIMIC-III notes are hard-wrapped at about 80 characters, so a single newline is usually *inside* a
sentence. A sentence ends at:

- a full stop, question or exclamation mark followed by whitespace (not after a list number such as
  ``1.`` at the start of a line, a dotted abbreviation such as ``p.o.`` or ``e.g.``, or a title such as
  ``Dr.``);
- a blank line (MIMIC separates sections, list blocks and addenda with them);
- a section header at the start of a line (``Discharge Diagnosis:``, ``HISTORY OF PRESENT ILLNESS:``),
  which is a sentence of its own.

Every token lies inside exactly one sentence, so the tokens of the sentences, in order, are the
tokens of the note.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"\w+")
# For ASCII text, the \w+ runs that are not pure numbers, in one C-level pass (same tokens as the rule).
_ASCII_TOKEN = re.compile(r"\w*[a-z_]\w*", re.ASCII)  # applied to lowercased ASCII text
# A blank line (possibly holding spaces) and any whitespace after it.
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A header: at a line start, a capitalised phrase of up to six words ending in a colon + whitespace.
_HEADER = re.compile(r"^[ \t]*[A-Z][A-Za-z]*(?:[ \t]+[A-Za-z/&()-]+){0,5}:(?=\s|$)", re.MULTILINE)
# Sentence-final punctuation: the run of marks must be followed by whitespace or the end of the text.
_STOP = re.compile(r"[.?!]+(?=\s|$)")
# Full stops that do not end a sentence; matched against the text up to and including the stop.
_NOT_A_STOP = re.compile(
    r"(?:(?:^|\n)[ \t]*\d{1,3}\."                       # list numbers: "1." at a line start
    r"|(?<![A-Za-z])(?:[A-Za-z]\.){2,}"                  # dotted abbreviations: p.o. b.i.d. e.g.
    r"|\b(?:Dr|Mr|Mrs|Ms|Drs|St|vs|Vs)\.)$"              # titles and "vs."
)
_TITLE_ENDS = frozenset({"Dr", "Mr", "rs", "Ms", "St", "vs", "Vs"})


def _ends_sentence(text: str, stop: int) -> bool:
    """Whether the full stop at ``stop`` ends a sentence; cheap tests first, the regex only when needed."""
    before = text[stop - 2: stop] if stop >= 2 else text[:stop]
    if not (before[-1:].isdigit() or before[:1] == "." or before in _TITLE_ENDS):
        return True
    return not _NOT_A_STOP.search(text, max(0, stop - 12), stop + 1)


def tokenize(text: str) -> list[str]:
    """CAML's tokens: ``\\w+`` runs, lowercased, with pure numbers dropped.

    Numbers inside words stay ("b12", "2nd"); underscores are word characters, as in CAML.

    >>> tokenize("Pt is a 72 yo M w/ CHF (EF 25%), s/p CABG x3 on [**2101-10-20**].")
    ['pt', 'is', 'a', 'yo', 'm', 'w', 'chf', 'ef', 's', 'p', 'cabg', 'x3', 'on']
    >>> tokenize(""), tokenize("12 ½ Über 3x")
    ([], ['über', '3x'])
    """
    if text.isascii():
        return _ASCII_TOKEN.findall(text.lower())
    return [token.lower() for token in _WORD.findall(text) if not token.isnumeric()]


def token_spans(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The tokens of ``tokenize`` with their character offsets ``(tokens, starts, ends)``.

    The model's attention evidence points back into the note through these offsets.

    >>> token_spans("CHF, 72 yo; b12")
    (['chf', 'yo', 'b12'], array([ 0,  8, 12], dtype=int32), array([ 3, 10, 15], dtype=int32))
    """
    matches = [m for m in _WORD.finditer(text) if not m.group().isnumeric()]
    return ([m.group().lower() for m in matches], np.array([m.start() for m in matches], np.int32),
            np.array([m.end() for m in matches], np.int32))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` as character offsets into ``text`` (``text[start:end]``).

    Spans are stripped of surrounding whitespace and keep only stretches holding at least one word
    character, so separator lines such as ``====`` belong to no sentence. A single hard-wrap newline
    does not end a sentence:

    >>> note = "He was admitted with chest\\npain. Troponin was\\nnegative\\n\\nDischarge Diagnosis:\\n1. CHF"
    >>> [note[s:e] for s, e in sentence_spans(note)]
    ['He was admitted with chest\\npain.', 'Troponin was\\nnegative', 'Discharge Diagnosis:', '1. CHF']

    A header on the same line as its content, abbreviations and decimals:

    >>> note = "Chief Complaint: dyspnea\\nMetoprolol 25 mg p.o. b.i.d. was 1.5 mg before. Seen by Dr. X?  Yes"
    >>> [note[s:e] for s, e in sentence_spans(note)]
    ['Chief Complaint:', 'dyspnea\\nMetoprolol 25 mg p.o. b.i.d. was 1.5 mg before.', 'Seen by Dr. X?', 'Yes']
    >>> sentence_spans(""), sentence_spans("  \\n\\n ---- \\n")
    ([], [])
    """
    cuts = {0, len(text)}
    for match in _BLANK_LINE.finditer(text):
        cuts.update(match.span())
    for match in _HEADER.finditer(text):
        cuts.update(match.span())
    for match in _STOP.finditer(text):
        if match.group() != "." or _ends_sentence(text, match.start()):
            cuts.add(match.end())
    bounds = sorted(cuts)
    spans: list[tuple[int, int]] = []
    for start, end in zip(bounds, bounds[1:]):
        piece = text[start:end]
        if not _WORD.search(piece):
            continue
        start += len(piece) - len(piece.lstrip())
        end -= len(piece) - len(piece.rstrip())
        spans.append((start, end))
    return spans
