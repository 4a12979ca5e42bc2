"""The back office's words: every area's catalogue has each word in both languages, no word is defined by two
areas, and every word a template or script asks for exists (a missing word fails here, never on a page)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.office import i18n

OFFICE = Path(i18n.__file__).parent
# w["x.y"] or w['x.y'] in templates; W["x.y"] / words["x.y"] in scripts
TEMPLATE_WORD = re.compile(r"""\bw\[\s*["']([a-z0-9_.]+)["']\s*\]""")
SCRIPT_WORD = re.compile(r"""\b(?:W|words|Office\.words)\[\s*["']([a-z0-9_.]+)["']\s*\]""")


def area_keys(lang: str) -> dict[str, set[str]]:
    return {p.stem: set(i18n.read_domain(p, lang)) for p in i18n.domains(lang)}


def test_every_area_has_both_languages_with_the_same_words():
    zh, en = area_keys("zh"), area_keys("en")
    assert set(zh) == set(en), "an area's catalogue exists in one language only"
    assert "office" in zh
    for area in zh:
        assert zh[area] == en[area], f"{area}.po: only in zh {sorted(zh[area] - en[area])}, only in en " \
                                     f"{sorted(en[area] - zh[area])}"


def test_no_word_is_defined_by_two_areas():
    seen: dict[str, str] = {}
    for area, keys in area_keys("zh").items():
        for key in keys:
            assert key not in seen, f"{key!r} is in both {seen[key]}.po and {area}.po"
            seen[key] = area


@pytest.mark.parametrize("path", sorted([*OFFICE.glob("templates/*.html"), *OFFICE.glob("static/*.js")]),
                         ids=lambda p: p.name)
def test_every_word_asked_for_exists_in_both_languages(path):
    pattern = TEMPLATE_WORD if path.suffix == ".html" else SCRIPT_WORD
    asked = set(pattern.findall(path.read_text(encoding="utf-8")))
    for lang in i18n.LANGS:
        missing = sorted(asked - set(i18n.words(lang)))
        assert not missing, f"{path.name} asks for words missing in {lang}: {missing}"


def test_a_word_defined_twice_is_refused_at_load(tmp_path, monkeypatch):
    for loc in i18n.LOCALES.values():
        folder = tmp_path / loc / "LC_MESSAGES"
        folder.mkdir(parents=True)
        for area in ("a", "b"):
            (folder / f"{area}.po").write_text('msgid "same.word"\nmsgstr "x"\n', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    with pytest.raises(ValueError, match="same.word"):
        i18n.load_catalogue("zh")


def test_times_and_roles_are_said_in_the_chain_s_words():
    assert i18n.local_time(0) == "1970-01-01 08:00"  # China time
    assert i18n.local_time(None) == "—"
    assert i18n.role("hq_admin", "zh") == "总部管理员" and i18n.role("viewer", "en") == "Viewer"
    assert i18n.role("nobody", "zh") == "nobody"
