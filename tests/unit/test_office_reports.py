"""The reports page's pure parts: every word it builds from a name is in both languages, cells and the chart."""
from __future__ import annotations

import re

from cloud.office import i18n
from cloud.office.report_chart import Series, bar_chart, nice_top
from cloud.office.reports import CHARTS, cell
from protocol import reports as rp
from protocol.segments import SEGMENTS


def test_every_word_the_page_builds_from_a_name_exists_in_both_languages():
    keys = {f"reports.name.{n}" for n in rp.REPORTS}
    keys |= {f"reports.group.{g}" for k in rp.REPORTS.values() for g in k.groups}
    keys |= {f"reports.col.{c}" for k in rp.REPORTS.values() for c in k.columns if c != "key"}
    keys |= {f"reports.segment.{s}" for s in (*SEGMENTS, rp.NO_SEGMENT)}
    keys |= {f"reports.level.{v}" for v in ("regular", "silver", "gold", "platinum", rp.NON_MEMBER)}
    keys |= {f"reports.series.{css}" for _, series, _ in CHARTS.values() if len(series) > 1 for _, css in series}
    for lang in i18n.LANGS:
        missing = sorted(keys - set(i18n.words(lang)))
        assert not missing, f"{lang}: {missing}"


def test_cells_show_yuan_percentages_and_words():
    w = i18n.words("en")
    assert cell("sales_fen", 123_456, w) == "1234.56" and cell("online_share_bp", 2_500, w) == "25.00%"
    assert cell("level", "non_member", w) == "Non-member" and cell("tickets", 7, w) == "7"
    assert cell("avg_ticket_fen", None, w) == "—"


def test_the_axis_top_is_a_round_number_above_the_highest_bar():
    assert [nice_top(v) for v in (0, 1, 3, 7, 19, 450, 1001)] == [1, 1, 5, 10, 20, 500, 2000]


def test_the_chart_stacks_the_series_and_titles_each_bar_with_its_figures():
    svg = bar_chart("Sales <all>", ["2026-03-01", "2026-03-02"],
                    [Series("Till", [300, 0], "till"), Series("Online", [100, 50], "online")], "yuan")
    assert svg.startswith("<svg") and 'role="img"' in svg and "Sales &lt;all&gt;" in svg
    assert svg.count("<rect") == 4 and "2026-03-01: Till 300; Online 100" in svg
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)"', svg)]
    plot = 260 - 40 - 12
    assert heights == [plot * 300 / 500, plot * 100 / 500, 0.0, plot * 50 / 500]  # top of the axis: 500
    assert ">03-01<" in svg  # a day's label without its year


def test_a_chart_of_many_days_draws_the_last_bars_and_a_few_labels():
    labels = [f"k{n}" for n in range(500)]
    svg = bar_chart("t", labels, [Series("s", list(range(500)), "till")], "u")
    assert svg.count("<rect") == 400 and "k99:" not in svg and "k100:" in svg
    assert svg.count('class="tick" x=') - 3 <= 12
