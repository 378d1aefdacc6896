"""The CALLS edges of a built output: how many, and how many call sites have at least one, read
from the `cpg_edges` Delta table through a DataFusion session (what a change to the points-to
analysis must keep, or explain).

    .venv/bin/python tests/benchmarks/calls_counts.py OUT [OTHER_OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from datafusion import SessionContext
from deltalake import DeltaTable

COUNTS = """SELECT count(*) AS calls_edges, count(DISTINCT src) AS call_sites_with_edge,
    count(DISTINCT concat(src, '>', dst)) AS distinct_pairs
FROM cpg_edges WHERE kind = 'CALLS'"""


def counts(out: Path) -> dict[str, int]:
    session = SessionContext()
    session.register_table("cpg_edges", DeltaTable(str(out / "cpg_edges")))
    return session.sql(COUNTS).to_arrow_table().to_pylist()[0]


def main() -> None:
    for out in sys.argv[1:]:
        print(out, counts(Path(out)))


if __name__ == "__main__":
    main()
