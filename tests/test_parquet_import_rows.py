"""``convert x.parquet out.manifest --to manifest`` writes each row's ``raw`` bytes as one line, or
refuses the file naming the row.

A Parquet file whose ``raw`` column is not bytes (strings, numbers: a table rebuilt by another
tool) stopped with a traceback (``TypeError: a bytes-like object is required, not 'str'``). Rows
whose ``raw`` had no line terminator were written one after another, ``{...}{...}``: one broken
line for two, exit 0, ``lines 2``. Now each is refused in one line (exit 1), nothing written; the
last row alone may end without a terminator, as the manifest's last line may.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_user_mistakes import cli, one_line_error

A = b'{"source-ref":"s3://b/1.jpg"}'
B = b'{"source-ref":"s3://b/2.jpg"}'


@pytest.mark.parametrize(
    ("column", "said"),
    [
        (pa.array([A.decode() + "\n", B.decode()]), "'raw' column holds string, not each line's bytes (binary)"),
        (pa.array([1, 2]), "'raw' column holds int64, not each line's bytes (binary)"),
        (pa.array([A, B + b"\n"]), "row 1's raw ends without a line terminator"),
        (pa.array([A + b"\n", None, B]), "row 2's raw is null"),
        (pa.array([A + b"\n" + B + b"\n"]), "row 1's raw holds more than one line"),
    ],
    ids=["strings", "numbers", "no-terminator", "null", "two-lines"],
)
def test_a_raw_column_that_is_not_one_line_a_row_is_refused_naming_the_row(tmp_path: Path, column: pa.Array,
                                                                            said: str) -> None:
    pq.write_table(pa.table({"raw": column}), tmp_path / "t.parquet")
    r = cli("convert", "t.parquet", "out.manifest", "--to", "manifest", cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1, r.stderr
    assert said in line and "t.parquet" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # nothing written, no temporary left


def test_the_last_row_may_end_without_a_terminator(tmp_path: Path) -> None:
    pq.write_table(pa.table({"raw": pa.array([A + b"\r\n", B])}), tmp_path / "t.parquet")
    r = cli("convert", "t.parquet", "out.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.manifest").read_bytes() == A + b"\r\n" + B


@pytest.mark.parametrize("rows", [[], [b"\xef\xbb\xbf\n", b"\n", b"  \r\n"]], ids=["no-row", "blank-rows"])
def test_a_parquet_file_with_no_data_object_is_refused_as_an_empty_manifest_is(tmp_path: Path,
                                                                               rows: list[bytes]) -> None:
    """A Parquet file of no row (pyarrow's, or ours of a table that has none) wrote an empty
    manifest, exit 0, where every other empty input of ``convert`` is refused (``input-empty``,
    exit 1, nothing written), as a job and ``validate`` refuse the manifest it made."""
    pq.write_table(pa.table({"raw": pa.array(rows, pa.binary())}), tmp_path / "t.parquet")
    r = cli("convert", "t.parquet", "out.manifest", "--to", "manifest", cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1, r.stderr
    # rows, not lines; and none at all is "no row", not "0 lines, all blank" (all of nothing)
    held = f"{len(rows)} rows, all blank" if rows else "no row"
    assert line.endswith(f"Parquet file t.parquet holds no data object ({held}); there is nothing to convert, so "
                         "nothing was written [input-empty]"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # nothing written, no temporary left
    (tmp_path / "m.manifest").write_bytes(b"".join(rows))  # the same lines as a manifest: the same refusal
    r = cli("convert", "m.manifest", "out.parquet", "--to", "parquet", cwd=tmp_path)
    assert r.returncode == 1 and "there is nothing to convert, so nothing was written [input-empty]" in r.stderr
    assert not (tmp_path / "out.parquet").exists()
