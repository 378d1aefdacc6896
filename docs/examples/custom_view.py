"""Add a view of your own to a build: functions per module, from the `cpg_nodes` frame.

    python docs/examples/custom_view.py path/to/code --out build/cpg

A view is a Hamilton function that takes the frames it reads by name and returns a lazy DataFusion
frame. `build_driver(..., modules=[...])` adds a module of your own (made here from the functions
below with `ad_hoc_utils`; a module file works the same) to the execution driver: Hamilton wires
`functions_per_module` to the pipeline's `cpg_nodes` by the parameter's name, and `busiest_module`
to `functions_per_module`, so they show in the DAG and in a tracked run with the rest. Nothing is
computed until the last frame is collected.
"""

from __future__ import annotations

import argparse

from datafusion import DataFrame, col, lit
from datafusion import functions as f
from hamilton import ad_hoc_utils

from driver.api import build_driver


def functions_per_module(cpg_nodes: DataFrame) -> DataFrame:
    """Each module of the code base with the functions and methods defined in its file (lambdas
    included), most first."""
    modules = cpg_nodes.filter(col("kind") == lit("MODULE")).select(
        col("qualname").alias("module"), col("file_id").alias("module_file"))
    functions = cpg_nodes.filter(col("kind") == lit("FUNCTION")).select(col("node_id"), col("file_id"))
    return (modules.join(functions, left_on="module_file", right_on="file_id", how="left")
            .aggregate([col("module")], [f.count(col("node_id")).alias("functions")])
            .sort(col("functions").sort(ascending=False), col("module").sort()))


def busiest_module(functions_per_module: DataFrame) -> str:
    """The module that defines the most functions."""
    return functions_per_module.limit(1).to_pylist()[0]["module"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the folder of the code base")
    parser.add_argument("--out", required=True, help="where the build's tables are written")
    args = parser.parse_args()

    views = ad_hoc_utils.create_temporary_module(functions_per_module, busiest_module, module_name="my_views")
    dr = build_driver(args.source, args.out, jobs=1, modules=[views])
    results = dr.execute(["functions_per_module", "busiest_module"])
    print("functions per module:")
    print(results["functions_per_module"].to_pandas().to_string(index=False))
    print(f"\nbusiest module: {results['busiest_module']}")


if __name__ == "__main__":
    main()
