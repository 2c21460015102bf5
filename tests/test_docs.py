"""The parquet tables are defined once (records/tables.py); docs/SCHEMAS.md and the README show
them, and must not drift from that definition (the collector and analysis tests check the real
files against the same definition)."""

import subprocess
import sys
from pathlib import Path

from records import tables

ROOT = Path(__file__).resolve().parents[1]


def test_schemas_doc_ends_with_the_generated_tables():
    """docs/SCHEMAS.md's result tables are exactly what `python -m records.tables` prints, from
    their headings to the end of the file (no row added, dropped or edited by hand)."""
    printed = subprocess.run([sys.executable, "-m", "records.tables"], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout
    assert printed == tables.document()
    schemas = (ROOT / "docs" / "SCHEMAS.md").read_text()
    tail = schemas[schemas.index("## results/<sweep>/runs.parquet"):]
    assert tail == printed, "regenerate the tables: python -m records.tables"


def test_readme_parquet_tables_match_schemas_doc():
    readme = (ROOT / "README.md").read_text()
    for table in (tables.RUNS, tables.CURVES):
        assert tables.markdown(table) in readme, "copy the tables from `python -m records.tables` into the README"
