"""`attnres fit --table` on bad tables: the file, the column and the first bad row named, exit 2;
non-positive or non-finite compute/N/D refused like bad losses; exit 1 when nothing could be fitted.
"""

from __future__ import annotations

import math

import pytest

from attnres.cli import main


def table(tmp_path, rows: list[tuple], header: str = "variant,C,N,D,loss,seed", name: str = "t.csv"):
    path = tmp_path / name
    path.write_text("# a comment line, not a row\n" + header + "\n"
                    + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def good_rows() -> list[list]:
    """Four sizes per variant on L = 2 C^-0.05 (the baseline) and a 1.2x shift."""
    rows = []
    for v, m in (("baseline", 1.0), ("full", 1.2)):
        for i, c in enumerate((1e-6, 1e-5, 1e-4, 1e-3)):
            n = 1e6 * 10 ** (i / 2)
            rows.append([v, c, n, c * 8.64e19 / (6 * n), round(2 * (m * c) ** -0.05, 6), 0])
    return rows


def fit(path, *extra: str) -> int:
    return main(["fit", "--table", str(path), "--arm-col", "variant", "--loss-col", "loss", "--n-boot", "0",
                 "--forms", "paper", *extra])


def test_a_good_table_fits(tmp_path, capsys):
    assert fit(table(tmp_path, good_rows()), "--c-col", "C") == 0
    assert "multiplier" in capsys.readouterr().out


BAD = [  # (column, row index, bad value, flags, words the message must hold)
    ("C", 2, "abc", ("--c-col", "C"), "holds text at row 2: 'abc'"),
    ("C", 5, "-1e-4", ("--c-col", "C"), "at row 5"),
    ("C", 1, "inf", ("--c-col", "C"), "at row 1"),
    ("C", 3, "", ("--c-col", "C"), "at row 3"),
    ("N", 4, "0", ("--n-col", "N", "--d-col", "D"), "at row 4"),
    ("D", 6, "-5", ("--n-col", "N", "--d-col", "D"), "at row 6"),
    ("N", 0, "1e6x", ("--n-col", "N", "--c-col", "C"), "holds text at row 0"),
    ("loss", 7, "nan", ("--c-col", "C"), "at row 7"),
    ("seed", 2, "one", ("--c-col", "C", "--seed-col", "seed"), "holds text at row 2"),
    ("seed", 3, "1.5", ("--c-col", "C", "--seed-col", "seed"), "at row 3"),
]


@pytest.mark.parametrize("column,row,value,flags,words", BAD, ids=[f"{b[0]}={b[2]!r}" for b in BAD])
def test_bad_value_named_by_file_column_and_row(tmp_path, capsys, column, row, value, flags, words):
    rows = good_rows()
    rows[row]["variant,C,N,D,loss,seed".split(",").index(column)] = value
    path = table(tmp_path, rows)
    assert fit(path, *flags) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"column {column!r}" in err and words in err and "fix:" in err, err
    assert "Traceback" not in err and "could not convert" not in err


def test_nothing_fitted_exits_nonzero(tmp_path, capsys):
    path = table(tmp_path, good_rows()[:1])  # one row: no form can be fitted
    assert fit(path, "--c-col", "C") == 1
    assert "nothing could be fitted" in capsys.readouterr().err


def test_rows_counted_as_in_the_message(tmp_path):
    """'row i' is the i-th data row from 0 (comment lines and the header not counted), also after --query."""
    from analysis.load import AnalysisInputError, load_table

    rows = good_rows()
    rows[6][1] = -1
    path = table(tmp_path, rows)
    with pytest.raises(AnalysisInputError, match="at row 6 "):
        load_table(path, loss_col="loss", c_col="C", query="variant == 'full'")
    assert math.isclose(load_table(path, loss_col="loss", c_col="C", query="C > 0").compute.min(), 1e-6)
