"""Build the Code Property Graph of a code base, then ask it questions.

    python docs/examples/build_and_query.py path/to/code --out build/cpg [--callers pkg.mod.f]

Shows the two halves of the Python API: `build_driver` (the factory: it plans the build, then returns
the Hamilton driver that executes it) and `open_session` (a DataFusion session over the built Delta
tables), asked one question in SQL — the classes with the most methods — and, with ``--callers``,
one through a ready-made helper of `driver.questions` (who calls a function, two calls deep).
"""

from __future__ import annotations

import argparse

from driver.api import build_driver, callers_of, open_session

LARGEST_CLASSES_SQL = """
SELECT c.qualname AS class, count(*) AS methods
FROM cpg_nodes c
JOIN cpg_edges contains ON contains.src = c.node_id AND contains.kind = 'CONTAINS'
JOIN cpg_nodes f ON f.node_id = contains.dst AND f.kind = 'FUNCTION'
WHERE c.kind = 'CLASS'
GROUP BY c.qualname
ORDER BY methods DESC, class
LIMIT 5
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the folder of the code base")
    parser.add_argument("--out", required=True, help="where the tables are written")
    parser.add_argument("--callers", metavar="QUALNAME", help="a function to find the callers of")
    args = parser.parse_args()

    dr = build_driver(args.source, args.out, jobs=1)
    summary = dr.execute(["build_summary"])["build_summary"]
    print(f"built {summary.files} files: {summary.nodes:,} nodes, {summary.edges:,} edges into {summary.output_dir}")

    session, _ = open_session(args.out)
    print("\nclasses with the most methods:")
    print(session.sql(LARGEST_CLASSES_SQL).to_pandas().to_string(index=False))
    if args.callers:
        print(f"\nwho calls {args.callers} (two calls deep):")
        callers = callers_of(session, args.callers, depth=2).select(["depth", "caller", "path", "line"])
        print(callers.to_pandas().to_string(index=False))


if __name__ == "__main__":
    main()
