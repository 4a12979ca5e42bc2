"""The cloud's pages' words (the mall, the back office) from gettext catalogues, read with Babel at start (`read_po`
builds a catalogue in memory: there is no compile step). Pure after reading."""
from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po


def read_po_words(path: Path, locale: str) -> dict[str, str]:
    """A catalogue's translations, msgid -> text; untranslated entries are left out (a gap fails the pages' word
    tests, never shows a blank or English word on a Chinese page)."""
    with open(path, "rb") as f:
        catalog = read_po(f, locale=locale)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}
