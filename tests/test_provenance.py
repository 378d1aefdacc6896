"""The decision provenance graph, read back from its Delta tables with SQL and through `cpgflow why`.

The shop fixture is built twice with the real console script: first with ``--cache-policy
name_uses=none`` (a first build has no statistics, so the view graph alone decides), then plainly
(the policy weighs the statistics the first build left). What each decision must say follows from
the rules (docs/pipeline.md, relspec/policy.py, relspec/maintenance.py), stated here by hand:

- ``name_resolution`` reads the views scope_candidates, module_scopes and scope_parents and is scanned
  once each by resolved_uses and builtin_uses: fan-out 2, so it is staged; it is not a leaf, so the rule that
  inlines a leaf over fewer than 20,000 source rows cannot apply, but its source statistics are weighed;
- ``name_uses`` is read by three views but is a leaf over ex_references, which holds fewer than 20,000
  rows: inlined on the second build; on the first, the override inlines it;
- each CPG table is written as one file by the first build: the small tier compacts at 4 small files
  and checkpoints every 10 versions, so maintenance reaches no threshold; the second build reuses every
  CPG table (the override changes no output's fingerprint), so its maintenance skips them unmeasured;
- ``scope_candidates`` relates key_scopes to name_presence ``in_scope``: the scope-id and name pair, and
  the file pair (each side names its file, and a scope is one file's).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error, query, run_cli, write_tree
from shop_fixture import FIXTURE

from relspec.calibration import DEFAULT_INLINE_MAX_ROWS
from relspec.catalog import EXTRACT_TABLES, LOG_TABLES

CPG_TABLES = ("cpg_diagnostics", "cpg_edges", "cpg_nodes", "cpg_points_to", "cpg_props")

CITED_SQL = """
SELECT d.kind AS decision_kind, d.value AS decision_value, d.score, d.fallback_reason, c.role, v.kind, v.name,
       v.value, v.quantity
FROM provenance_decisions d
JOIN provenance_edges c ON c.run_id = d.run_id AND c.decision_id = d.decision_id
JOIN provenance_evidence v ON v.run_id = c.run_id AND v.evidence_id = c.evidence_id
WHERE d.run_id = '{run}' AND d.subject = '{subject}' AND d.kind = '{kind}'
ORDER BY c.role, v.name
"""


@pytest.fixture(scope="module")
def shop_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The shop built with an override, then again without; returns (out, first run id, second run id).
    With staging tables (a fixture this small is held in memory by default): the second build reuses them."""
    base = tmp_path_factory.mktemp("provenance")
    root = write_tree(base / "src", FIXTURE)
    out = base / "out"
    for extra in (["--cache-policy", "name_uses=none"], []):
        done = run_cli("build", root, "--out", out, "-j", "1", "--quiet", "--staging", "delta", *extra)
        assert done.returncode == 0, done.stderr
    runs = [row["run_id"] for row in query(out, "SELECT run_id FROM cpg_runs ORDER BY started_at")]
    assert len(runs) == 2
    return out, runs[0], runs[1]


def _cited(out: Path, run: str, subject: str, kind: str) -> list[dict]:
    return query(out, CITED_SQL.format(run=run, subject=subject, kind=kind))


def _rows_of(out: Path, table: str) -> int:
    return query(out, f"SELECT count(*) AS n FROM {table}")[0]["n"]


def test_a_staged_view_cites_its_fan_out_and_the_statistics_it_weighed(shop_runs):
    out, _, second = shop_runs
    cited = _cited(out, second, "name_resolution", "cache_policy")
    assert {row["decision_value"] for row in cited} == {"delta_staging"}
    (topology,) = [row for row in cited if row["role"] == "topology"]
    assert topology["kind"] == "topology" and topology["quantity"] == 2
    assert "resolved_uses" in topology["value"] and "builtin_uses" in topology["value"]
    statistics = {row["name"]: row["quantity"] for row in cited if row["role"] == "source_size"}
    assert {"ex_references", "ex_bindings", "ex_scopes"} <= statistics.keys()
    assert all(row["kind"] == "statistic" for row in cited if row["role"] == "source_size")
    assert statistics == {table: _rows_of(out, table) for table in statistics}  # measured rows, as built
    (rule,) = [row for row in cited if row["role"] == "threshold"]
    assert rule["kind"] == "rule" and rule["quantity"] == DEFAULT_INLINE_MAX_ROWS


def test_a_small_leaf_view_is_inlined_on_its_statistics(shop_runs):
    out, _, second = shop_runs
    cited = _cited(out, second, "name_uses", "cache_policy")
    assert {row["decision_value"] for row in cited} == {"none"}
    statistics = {row["name"]: row["quantity"] for row in cited if row["role"] == "source_size"}
    assert statistics == {"ex_references": _rows_of(out, "ex_references")}
    assert statistics["ex_references"] < DEFAULT_INLINE_MAX_ROWS
    assert [row["quantity"] for row in cited if row["role"] == "topology"] == [3]
    assert [row["role"] for row in cited if row["kind"] == "override"] == []


def test_an_override_is_cited_as_override_evidence(shop_runs):
    out, first, _ = shop_runs
    cited = _cited(out, first, "name_uses", "cache_policy")
    assert {(row["decision_value"], row["score"], row["fallback_reason"]) for row in cited} == {("none", 1.0, None)}
    overrides = [(row["kind"], row["value"]) for row in cited if row["role"] == "override"]
    assert overrides == [("override", "name_uses=none")]
    assert not [row for row in cited if row["role"] == "source_size"]  # a first build has no statistics


def test_maintenance_decisions_cite_their_reason_code(shop_runs):
    out, first, second = shop_runs
    for table in CPG_TABLES:
        # the first build made the tables (one commit: nothing to maintain); the second wrote none of them
        for run, reason in ((first, "skip.one_commit"), (second, "skip.unchanged_since_maintenance")):
            cited = _cited(out, run, table, "maintenance")
            assert {row["decision_value"] for row in cited} == {"no action"}, table
            assert [row["value"] for row in cited if row["role"] == "reason_code"] == [reason]
            (thresholds,) = [row["value"] for row in cited if row["role"] == "thresholds"]
            assert "compact at 4 files" in thresholds and "checkpoint every 10 versions" in thresholds
            assert "vacuum every 8 versions" in thresholds
        # the first build had no statistics to cite
        assert [row["quantity"] for row in cited if row["role"] == "table_size"] == [_rows_of(out, table)]


def test_one_fact_is_one_evidence_node_cited_by_every_decision_resting_on_it(shop_runs):
    out, _, second = shop_runs
    duplicates = query(out, "SELECT run_id, evidence_id FROM provenance_evidence GROUP BY run_id, evidence_id "
                            "HAVING count(*) > 1")
    assert duplicates == []
    reasons = query(out, f"""
        SELECT v.value, count(DISTINCT v.evidence_id) AS nodes, count(c.decision_id) AS citations
        FROM provenance_evidence v JOIN provenance_edges c ON c.run_id = v.run_id AND c.evidence_id = v.evidence_id
        WHERE v.run_id = '{second}' AND v.value LIKE 'skip.%' GROUP BY v.value ORDER BY v.value""")
    # one evidence node per reason code, cited by each table resting on it: the logs still hold the one commit
    # the first build made (its record, release, provenance) when the second is maintained; the second build
    # wrote neither the tables of the first one's release nor the staged results it reused, so its maintenance
    # skips them unmeasured
    (record,) = [run for run in json.loads(run_cli("runs", out, "--json").stdout) if run["run_id"] == second]
    reused = [view["view"] for view in record["views"] if view["policy"] == "delta_staging"
              and view["outcome"] == "reused"]
    assert reused and [(row["value"], row["nodes"], row["citations"]) for row in reasons] == [
        ("skip.one_commit", 1, len(LOG_TABLES)),
        ("skip.unchanged_since_maintenance", 1, len(CPG_TABLES) + len(EXTRACT_TABLES) + len(reused))]
    references = query(out, f"""
        SELECT count(DISTINCT c.decision_id) AS decisions FROM provenance_edges c
        JOIN provenance_evidence v ON v.run_id = c.run_id AND v.evidence_id = c.evidence_id
        WHERE c.run_id = '{second}' AND v.kind = 'statistic' AND v.name = 'ex_references'""")
    assert references[0]["decisions"] >= 3  # name_uses' cache policy and scan options, the session's scan


def test_every_edge_joins_a_decision_to_evidence_of_its_run(shop_runs):
    out, _, _ = shop_runs
    dangling = query(out, """
        SELECT count(*) AS n FROM provenance_edges c
        LEFT JOIN provenance_decisions d ON d.run_id = c.run_id AND d.decision_id = c.decision_id
        LEFT JOIN provenance_evidence v ON v.run_id = c.run_id AND v.evidence_id = c.evidence_id
        WHERE d.decision_id IS NULL OR v.evidence_id IS NULL""")
    assert dangling == [{"n": 0}]


def test_each_run_has_its_status_decision(shop_runs):
    out, first, second = shop_runs
    decided = query(out, "SELECT d.run_id, d.value, r.status FROM provenance_decisions d "
                         "JOIN cpg_runs r ON r.run_id = d.run_id WHERE d.kind = 'run_status' AND d.subject = 'run' "
                         "ORDER BY r.started_at")
    assert [row["run_id"] for row in decided] == [first, second]
    assert all(row["value"] == row["status"] for row in decided)


def test_join_decisions_of_a_relate_view(shop_runs):
    out, _, second = shop_runs
    strategy = _cited(out, second, "scope_candidates", "join_strategy")
    assert {row["decision_value"] for row in strategy} == {"scope_name_equi"}
    assert [row["value"] for row in strategy if row["role"] == "relation"] == ["key_scopes in_scope name_presence"]
    keys = _cited(out, second, "scope_candidates", "join_keys")
    assert {row["decision_value"] for row in keys} == {"scope_id=scope_id, name=name, file_id=file_id"}
    assert {row["kind"] for row in keys} == {"semantic_type"}


def test_the_provenance_tables_answer_cpgflow_query(shop_runs):
    out, _, _ = shop_runs
    done = run_cli("query", out, "SELECT count(*) AS n FROM provenance_decisions WHERE kind = 'run_status'",
                   "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 2}]


def test_why_explains_a_staged_view_in_plain_words(shop_runs):
    out, _, second = shop_runs
    statistics = [row["quantity"] for row in _cited(out, second, "name_resolution", "cache_policy")
                  if row["role"] == "source_size"]
    done = run_cli("why", out, "name_resolution")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"run {second}"
    headline = (f"name_resolution: cache policy staged (delta_staging), confidence 1.00 — {sum(statistics):,} rows "
                f"in its {len(statistics)} source tables (measured statistics)")
    assert headline in lines
    assert any(line == "  - in the view graph: its plan would run 2 times, scanned by resolved_uses, builtin_uses "
               "(fan-out 2)"
               for line in lines)
    assert f"  - measured statistics of ex_references: {_rows_of(out, 'ex_references')} rows" in done.stdout
    assert f"times the scans of it past the first stay under {DEFAULT_INLINE_MAX_ROWS:,}" in done.stdout


def test_why_cites_an_override_of_an_earlier_run(shop_runs):
    out, first, _ = shop_runs
    done = run_cli("why", out, "name_uses", "--run", first)
    assert done.returncode == 0, done.stderr
    assert "name_uses: cache policy inlined (none), confidence 1.00" in done.stdout
    assert "  - explicit override: name_uses=none" in done.stdout


def test_why_explains_maintenance_and_the_run(shop_runs):
    out, first, second = shop_runs
    for run, reason in ((["--run", first], "skip.one_commit"), ([], "skip.unchanged_since_maintenance")):
        table = run_cli("why", out, "cpg_nodes", *run)
        assert table.returncode == 0, table.stderr
        assert "cpg_nodes: maintenance no action" in table.stdout
        assert f"  - reason code: {reason}" in table.stdout
    status = query(out, f"SELECT status FROM cpg_runs WHERE run_id = '{second}'")[0]["status"]
    run = run_cli("why", out, "run")
    assert run.returncode == 0, run.stderr
    assert f"run: run status {status}, confidence 1.00" in run.stdout


def test_why_json_holds_the_decisions_and_their_evidence(shop_runs):
    out, first, _ = shop_runs
    done = run_cli("why", out, "name_uses", "--run", first, "--json")
    assert done.returncode == 0, done.stderr
    explained = json.loads(done.stdout)
    assert {item["run_id"] for item in explained} == {first}
    cache = [item for item in explained if item["decision"]["kind"] == "cache_policy"]
    assert [item["decision"]["value"] for item in cache] == ["none"]
    assert {"role": "override", "kind": "override", "name": "--cache-policy name_uses",
            "value": "name_uses=none", "quantity": None} in cache[0]["evidence"]


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no decision about 'nope'"),
    (["name_uses", "--run", "0000"], "run '0000' left no decision provenance"),
])
def test_why_without_a_decision_is_one_error_line(shop_runs, args, message):
    out, _, _ = shop_runs
    done = run_cli("why", out, *args)
    assert done.returncode == 1
    assert_one_line_error(done.stderr)
    assert message in done.stderr
    assert "cpgflow query DIR" in done.stderr or "cpgflow runs DIR" in done.stderr  # how to find what to ask


def test_why_explains_how_many_extraction_tables_were_written_at_once(shop_runs):
    """A decision the run makes as it runs, from the spooled tables' sizes: a shop-sized build's two
    largest tables hold a few kilobytes, far under a quarter of any session's memory budget, so two
    tables are written at once; the run record carries the decision, and `why extraction` says it."""
    out, first, _ = shop_runs
    cited = _cited(out, first, "extraction", "extraction_writes")
    assert {row["decision_value"] for row in cited} == {"2_at_once"}
    assert any("the two largest extraction tables hold" in row["value"] for row in cited)
    record = json.loads(query(out, f"SELECT record FROM cpg_runs WHERE run_id = '{first}'")[0]["record"])
    # (and what it found to compute: a first build reuses nothing, so it leaves out no view)
    assert [decision["decision_value"] for decision in record["decisions"]] == ["2_at_once", "0 unneeded"]
    done = run_cli("why", out, "extraction", "--run", first)
    assert done.returncode == 0, done.stderr
    assert "extraction: extraction writes 2_at_once, confidence 0.80" in done.stdout
    assert "extraction: extraction in_process, confidence 1.00" in done.stdout  # -j 1: the compiled decision too
