"""Track a build in the Hamilton UI: its DAG, each node's timing, role tag and result summary.

    HAMILTON_API_URL=http://localhost:8241 python docs/examples/track_to_ui.py path/to/code --out build/cpg \\
        [--api-url URL] [--project-id N] [--username NAME]

Start the UI and create its project first (docs/ui.md). The UI is the one at ``--api-url``, else at
``$HAMILTON_API_URL``, else at http://localhost:8241; ``--username`` must be among the project's
writers (default: your login name). The tracker prints the run's address when the run starts and
ends, and sends the last node results when this script exits.
"""

from __future__ import annotations

import argparse

from driver.api import build_driver
from driver.tracking import build_tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the folder of the code base")
    parser.add_argument("--out", required=True, help="where the tables are written")
    parser.add_argument("--api-url", help="the Hamilton UI's address (default: $HAMILTON_API_URL or the local UI)")
    parser.add_argument("--project-id", type=int, default=1, help="the UI project the run is recorded in")
    parser.add_argument("--username", help="a writer of the project (default: your login name)")
    args = parser.parse_args()

    tracker = build_tracker(args.source, args.out, project_id=args.project_id, username=args.username,
                            api_url=args.api_url)
    summary = build_driver(args.source, args.out, jobs=1, adapters=[tracker]).execute(["build_summary"])[
        "build_summary"]
    print(f"built {summary.files} files: {summary.nodes:,} nodes, {summary.edges:,} edges; "
          f"the run is in project {args.project_id} of the Hamilton UI")


if __name__ == "__main__":
    main()
