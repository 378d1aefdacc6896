"""Measure how far a one-file edit of the standard library reaches: for every staged view and every
output, the rows that differ between a build of the tree before the edit and a build after it, and
the files those rows belong to. What an incremental build must recompute at the least.

Copies the stdlib as bench_incremental.py does, builds it, then applies a leaf edit (a function
appended to a module nothing imports) and a hub edit (a line inserted near the top of the most
imported module), building each edited tree into a folder of its own, and compares.

    .venv/bin/python tests/benchmarks/change_footprint.py [--jobs N]
"""

from __future__ import annotations

import argparse
import shutil
import sysconfig
import tempfile
from pathlib import Path

from bench_incremental import (
    EXCLUDE,
    append_function,
    importer_counts,
    insert_line_near_top,
    pick_leaf,
    timed_build,
)
from datafusion import SessionContext
from deltalake import DeltaTable

from relspec.catalog import DatasetCatalog


def tables_of(out: Path) -> dict[str, str]:
    """{name: location} of every staged view and output table of a built folder."""
    catalog = DatasetCatalog(str(out))
    found = {path.name: str(path) for path in sorted((out / "_staging").iterdir()) if path.is_dir()}
    found |= {name: catalog.location(name) for name in ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_points_to")}
    return found


def footprint(before: Path, after: Path) -> list[tuple[str, int, int, int, int]]:
    """Per table: (name, rows, rows only before, rows only after, files those rows belong to)."""
    rows = []
    old, new = tables_of(before), tables_of(after)
    for name in sorted(old.keys() & new.keys()):
        session = SessionContext()
        session.register_table("a", DeltaTable(old[name]))
        session.register_table("b", DeltaTable(new[name]))
        columns = ", ".join(f'"{field.name}"' for field in session.table("a").schema())
        session.sql(f"CREATE VIEW gone AS SELECT {columns} FROM a EXCEPT ALL SELECT {columns} FROM b").collect()
        session.sql(f"CREATE VIEW came AS SELECT {columns} FROM b EXCEPT ALL SELECT {columns} FROM a").collect()
        count = session.sql("SELECT count(*) FROM b").to_arrow_table().column(0)[0].as_py()
        gone = session.sql("SELECT count(*) FROM gone").to_arrow_table().column(0)[0].as_py()
        came = session.sql("SELECT count(*) FROM came").to_arrow_table().column(0)[0].as_py()
        files = -1
        if "file_id" in session.table("a").schema().names:
            files = session.sql("SELECT count(DISTINCT file_id) FROM (SELECT file_id FROM gone UNION ALL "
                                "SELECT file_id FROM came)").to_arrow_table().column(0)[0].as_py()
        rows.append((name, count, gone, came, files))
    return rows


def report(title: str, rows: list[tuple[str, int, int, int, int]]) -> None:
    print(f"\n{title}\n{'table':28s} {'rows':>10s} {'gone':>9s} {'came':>9s} {'files':>6s}")
    for name, count, gone, came, files in rows:
        print(f"{name:28s} {count:10,} {gone:9,} {came:9,} {files if files >= 0 else '-':>6}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=0, help="extraction processes (0: one per core)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cpgflow-footprint-"))
    try:
        root = Path(shutil.copytree(sysconfig.get_paths()["stdlib"], work / "stdlib", symlinks=True,
                                    ignore=shutil.ignore_patterns(*EXCLUDE, "__pycache__")))
        base = work / "base"
        timed_build(root, base, args.jobs)
        importers = importer_counts(base)
        leaf = pick_leaf(importers, None)
        hub = max(sorted(importers), key=lambda path: importers[path])
        append_function(root / leaf)
        leafed = work / "leaf"
        timed_build(root, leafed, args.jobs)
        report(f"a function appended to {leaf} (imported by {importers[leaf]} files)", footprint(base, leafed))
        line = insert_line_near_top(root / hub)
        hubbed = work / "hub"
        timed_build(root, hubbed, args.jobs)
        report(f"a line inserted at {hub}:{line} (imported by {importers[hub]:,} files)", footprint(leafed, hubbed))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
