"""The README's parquet schema tables are the contract in docs/SCHEMAS.md (which the collector and
analysis tests check against the real files), so the two must not drift apart."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_parquet_tables_match_schemas_doc():
    schemas = (ROOT / "docs" / "SCHEMAS.md").read_text()
    tables = schemas[schemas.index("## results/<sweep>/runs.parquet"):]
    rows = [ln for ln in tables.splitlines() if ln.startswith("|")]
    readme = set((ROOT / "README.md").read_text().splitlines())
    missing = [r for r in rows if r not in readme]
    assert len(rows) > 30 and not missing, missing
