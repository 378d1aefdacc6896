"""Override the compiled cache policy of one view, and see what changes.

    python docs/examples/override_cache_policy.py path/to/code --out build/cpg \
        [--view name_keys] [--policy delta_staging]

The policy compiler chooses how each view is cached — `none` (lazy, inlined into its readers),
`delta_staging` (computed once into a staging Delta table its readers read — on a code base of up
to ~16 MB of source held in memory for the run instead, ``computed_in_memory``) or `delta_output`
(published) — from the view graph's topology and table statistics; ``cache_overrides`` wins over
its choice. This prints the compiled choice with its evidence, the Hamilton nodes of the view in the
execution driver without and with the override (a staged view ``v`` becomes ``v__query``, its frame;
``v__staged``, the saver that writes it; and ``v``, the loader its readers read), then builds with the
override and prints what the run record says happened to the view.
"""

from __future__ import annotations

import argparse

from hamilton import driver as hamilton_driver

from driver.api import build_driver, open_session
from driver.factory import plan_driver
from relspec.catalog import RUNS_TABLE
from relspec.runs import read_records


def view_nodes(dr: hamilton_driver.Driver, view: str) -> list[str]:
    """The nodes of ``dr`` that compute, save or load ``view``."""
    return sorted(var.name for var in dr.list_available_variables()
                  if not var.is_external_input and (var.name == view or var.name.startswith(f"{view}__")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the folder of the code base")
    parser.add_argument("--out", required=True, help="where the tables are written")
    parser.add_argument("--view", default="name_keys", help="the view whose policy is overridden")
    parser.add_argument("--policy", default="delta_staging", choices=["none", "delta_staging", "delta_output"])
    args = parser.parse_args()

    compiled = plan_driver(args.source, args.out, jobs=1).execute(["compiled_policy"])["compiled_policy"]
    choice = compiled.cache[args.view]
    print(f"compiled policy of {args.view}: {choice.cache} ({'; '.join(choice.confidence.evidence)})")
    default = build_driver(args.source, args.out, jobs=1)
    print(f"its nodes without the override: {', '.join(view_nodes(default, args.view))}")

    overrides = {args.view: args.policy}
    dr = build_driver(args.source, args.out, jobs=1, cache_overrides=overrides)
    print(f"its nodes with {args.view}={args.policy}: {', '.join(view_nodes(dr, args.view))}")
    dr.execute(["build_summary"])

    session, _ = open_session(args.out)
    record = read_records(session.table(RUNS_TABLE).to_arrow_table())[-1]  # the run just made
    (outcome,) = [outcome for outcome in record.views if outcome.view == args.view]
    rows = "" if outcome.rows is None else f", {outcome.rows:,} rows"
    print(f"run {record.run_id}: {args.view} ran under {outcome.policy}: {outcome.outcome}{rows}")


if __name__ == "__main__":
    main()
