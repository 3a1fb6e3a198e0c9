"""A short piece of a page's text around the query's words, with those words marked.

Pure Python: the template escapes each part and wraps the marked ones in <mark>, so page text
can never inject markup.
"""

import re

# Weaviate's `word` tokenization: runs of letters and digits.
_WORD = re.compile(r"\w+", re.UNICODE)
MIN_TERM_LENGTH = 2

Snippet = list[tuple[str, bool]]


def query_terms(query: str) -> list[str]:
    """The query's words, lowercased and unique, longest first (so a longer match wins)."""
    words = {word.lower() for word in _WORD.findall(query) if len(word) >= MIN_TERM_LENGTH}
    return sorted(words, key=lambda word: (-len(word), word))


def snippet_make(text: str, terms: list[str], *, width: int = 240) -> Snippet:
    """About `width` characters of `text` around its first matched term, split into
    (part, is_match) pairs; the start of the text when nothing matches; [] for no text.
    """
    text = " ".join(text.split())
    if not text:
        return []
    pattern = _terms_pattern(terms)
    first = pattern.search(text) if pattern else None
    start = 0 if first is None else max(0, first.start() - width // 3)
    end = min(len(text), start + width)
    start, end = _word_bounds(text, start, end)
    piece = text[start:end]
    parts: Snippet = []
    if start > 0:
        parts.append(("…", False))
    position = 0
    for match in pattern.finditer(piece) if pattern else ():
        if match.start() > position:
            parts.append((piece[position : match.start()], False))
        parts.append((match.group(0), True))
        position = match.end()
    if position < len(piece):
        parts.append((piece[position:], False))
    if end < len(text):
        parts.append(("…", False))
    return parts


def _terms_pattern(terms: list[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alternatives = "|".join(re.escape(term) for term in terms)
    # Whole words only, as keyword search matched them.
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE | re.UNICODE)


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    # Move the cuts outwards to spaces (within a few characters) so no word is cut in half.
    if start > 0:
        space = text.rfind(" ", max(0, start - 20), start)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.find(" ", end, end + 20)
        end = space if space >= 0 else end
    return start, end
