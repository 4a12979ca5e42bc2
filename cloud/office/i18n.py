"""The back office's words in Simplified Chinese (default) and English, read at start from gettext catalogues with
Babel (`read_po` builds them in memory: no compile step).

Each area keeps its own domain, `cloud/office/locale/<locale>/LC_MESSAGES/<area>.po`, so areas are written side
by side without touching one file; the domains of a language are merged into one table, and a message id defined
by two domains is an error at start (one meaning per word). Message ids are short keys (`prices.title`); templates
read `w["prices.title"]`. A word missing from either language fails tests/unit/test_office_i18n.py, never a page.
Pure after loading."""
from __future__ import annotations

from pathlib import Path

from cloud.gettext_words import read_po_words
from protocol.clock import to_rfc3339
from protocol.money import format_fen

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
LOCALES = {"zh": "zh_Hans", "en": "en"}  # the page's language -> the catalogue's locale directory
LOCALE_DIR = Path(__file__).parent / "locale"


def domains(lang: str) -> list[Path]:
    return sorted((LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES").glob("*.po"))


def read_domain(path: Path, lang: str) -> dict[str, str]:
    """One area's words in `lang`."""
    return read_po_words(path, LOCALES[lang])


def load_catalogue(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    where: dict[str, str] = {}
    for path in domains(lang):
        for key, text in read_domain(path, lang).items():
            if key in merged:
                raise ValueError(f"office words: {key!r} is in both {where[key]} and {path.name} ({lang})")
            merged[key], where[key] = text, path.name
    return merged


CATALOGUE: dict[str, dict[str, str]] = {lang: load_catalogue(lang) for lang in LANGS}


def lang_of(asked: str | None) -> str:
    return asked if asked in LANGS else DEFAULT_LANG


def words(lang: str) -> dict[str, str]:
    return CATALOGUE[lang_of(lang)]


yuan = format_fen  # integer fen as yuan with two decimals: 2350 -> "23.50"


def local_time(ms: int | None) -> str:
    """Epoch ms as the chain's local time (UTC+8), to the minute: '2026-12-01 09:30'; '—' for none."""
    if ms is None:
        return "—"
    stamp = to_rfc3339(ms + 8 * 3600 * 1000) or ""
    return stamp[:16].replace("T", " ")


def role(name: str | None, lang: str) -> str:
    """An operator role's name on the page ('hq_admin' is 总部管理员); an unknown one as it is."""
    return words(lang).get(f"role.{name}", name or "—")
