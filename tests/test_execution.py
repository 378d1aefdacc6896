"""Execution authority: the compiled policy is obeyed by the materializers, proved from what ran
(DataFusion plans, Delta tables on disk, run records); validation gates the run; runs are recorded.

The builds here ask for staging tables (``staging="delta"``): a fixture this small would have its
staged views held in memory by default (tests/test_memory_staging.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CPG_TABLE_NAMES, CPGFLOW, cli_env, query
from deltalake import DeltaTable
from shop_fixture import FIXTURE

from driver.api import NotReleased, build_driver, open_session
from driver.authority import UNCHANGED_REASON
from driver.cli import main as cli_main
from driver.delta_store import DeltaTableStore
from driver.options import BuildOptionError
from relspec.authority import ResolverIdentityError
from relspec.catalog import EXTRACT_TABLES, RUNS_TABLE, DatasetCatalog
from relspec.runs import RunRecord, read_records
from relspec.view_graph import ViewGraph


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def _runs(out: Path) -> list[RunRecord]:
    """The run log as it is now (runs are recorded whether or not they were released)."""
    return read_records(DeltaTableStore(DatasetCatalog(str(out))).read(RUNS_TABLE))


@pytest.fixture
def code(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    _write(root, FIXTURE)
    return root


def test_policies_are_obeyed_as_seen_in_datafusion_plans_and_on_disk(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dr = build_driver(code, out, jobs=1, staging="delta")
    results = dr.execute(["build_summary", "compiled_policy", "name_keys"])
    policy = results["compiled_policy"]
    record = _runs(out)[-1]
    outcomes = {outcome.view: outcome for outcome in record.views}
    # every view ran exactly as its compiled policy says
    expected_outcome = {"none": "lazy", "delta_staging": "computed_staged", "delta_output": "published"}
    for view, view_policy in policy.cache.items():
        assert outcomes[view].outcome == expected_outcome[view_policy.cache], view
    staged = {view for view, p in policy.cache.items() if p.cache == "delta_staging"}
    lazy = {view for view, p in policy.cache.items() if p.cache == "none"}
    assert "name_uses" in staged and "name_keys" in lazy
    # staged views exist as Delta tables; lazy ones do not; the extraction spool is gone
    assert all((out / "_staging" / view / "_delta_log").is_dir() for view in staged)
    assert not (out / "_spool").exists()
    assert not any((out / "_staging" / view).exists() for view in lazy)
    # name_keys reads name_uses: its plan scans the staged table, not the extraction table beneath it
    plan = str(results["name_keys"].optimized_logical_plan().display_indent())
    assert "TableScan: delta.name_uses" in plan and "ex_references" not in plan


def test_an_override_to_none_inlines_the_view_into_its_readers(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = build_driver(code, out, jobs=1, staging="delta", cache_overrides={"name_uses": "none"}).execute(
        ["build_summary", "compiled_policy", "name_keys"])
    view_policy = results["compiled_policy"].cache["name_uses"]
    assert view_policy.cache == "none" and view_policy.override
    assert "explicit override name_uses=none (compiled: delta_staging)" in view_policy.confidence.evidence
    plan = str(results["name_keys"].optimized_logical_plan().display_indent())
    assert "TableScan: delta.ex_references" in plan  # recomputed inside its reader
    assert not (out / "_staging" / "name_uses").exists()


def test_unchanged_rebuild_reuses_every_staged_view_and_an_edit_recomputes_exactly_downstream(
        code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    second = _runs(out)[-1]
    staged = [o for o in second.views if o.policy == "delta_staging"]
    assert staged and all(o.outcome == "reused" for o in staged)
    # a new function in a file without classes or decorators: the tables holding that file's rows
    # change (its MODULE id hashes its span, so rows pointing at the module change too); the
    # tables where the file has no rows keep their versions
    money = code / "shop" / "money.py"
    money.write_text(money.read_text() + "\n\ndef halve(x):\n    return x / 2\n")
    results = build_driver(code, out, jobs=1, staging="delta").execute(["build_summary", "semantic_plan"])
    third = _runs(out)[-1]
    changed = {name for name, version in third.package.source_versions.items()
               if second.package.source_versions.get(name) != version}
    assert {"ex_files", "ex_functions", "ex_modules"} <= changed
    assert not {"ex_bases", "ex_decorators", "ex_declarations"} & changed
    downstream = ViewGraph(results["semantic_plan"]).downstream_of_sources(changed)
    recomputed = {o.view for o in third.views if o.outcome == "computed_staged"}
    reused = {o.view for o in third.views if o.outcome == "reused"}
    assert recomputed == {o.view for o in third.views if o.policy == "delta_staging"} & downstream
    assert not reused & downstream  # (here every staged view reads a changed table)
    session, _ = open_session(out)
    names = session.sql("SELECT qualname FROM cpg_nodes WHERE name = 'halve' AND kind = 'FUNCTION'").to_arrow_table()
    assert names.column(0).to_pylist() == ["shop.money.halve"]


@pytest.mark.parametrize("mode", ["warn", "error"])
def test_a_required_staging_overridden_to_none_is_refused_in_any_mode(code: Path, tmp_path: Path, mode: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """scope_parents is re-scanned by a recursive view: lazy, the recursion would read it once and give
    wrong results, so the override is refused before anything is written, whatever the mode."""
    out = tmp_path / "out"
    status = cli_main(["build", str(code), "--out", str(out), "-j", "1", "-q", "--validation", mode,
                       "--cache-policy", "scope_parents=none"])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.splitlines() == ["error: --cache-policy: scope_parents=none: a recursive view re-scans scope_parents, "
                                "so it must be staged (delta_staging); lazy, it would give wrong results"]
    assert not (out / "cpg_nodes").exists() and not (out / "extract").exists() and not (out / "_runs").exists()


def test_a_run_that_fails_part_way_is_recorded(code: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A view given a frame without the columns its readers use fails the run after extraction and
    the first views: the run table says so, with the error and what each view did until then."""
    import datafusion
    import pyarrow as pa

    out = tmp_path / "out"
    dr = build_driver(code, out, jobs=1, staging="delta")
    broken = datafusion.SessionContext().from_arrow(pa.table({"nothing": [1]}))
    with pytest.raises(ValueError, match="No field named"):
        dr.execute(["build_summary"], overrides={"inherits_edges": broken})
    (record,) = _runs(out)
    assert record.status == "failed" and record.package is None and record.output_versions == {}
    assert record.message.startswith("ValueError: Schema error: No field named")
    assert "scope_parents" in {outcome.view for outcome in record.views}  # ran before it failed
    assert cli_main(["runs", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"run {record.run_id}" in shown and "failed" in shown and "No field named" in shown


def test_a_default_build_validates_clean(code: Path, tmp_path: Path) -> None:
    """Every view's SQL (the fixpoint program's comments and rule names included) passes validation:
    e.g. no word followed by a parenthesis is taken for a function the engine lacks."""
    out = tmp_path / "out"
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    (record,) = _runs(out)
    assert record.status == "released"
    assert record.validation == ()


def test_the_api_refuses_a_required_staging_dropped_in_warn_mode(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(BuildOptionError, match="class_bases=none: a recursive view re-scans class_bases"):
        build_driver(code, out, jobs=1, staging="delta", cache_overrides={"class_bases": "none"},
                     validation_mode="warn")
    assert not (out / "cpg_nodes").exists() and not (out / "_runs").exists()


def test_bad_cache_policy_argument_is_one_line(code: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["build", str(code), "--out", str(tmp_path / "o"), "--cache-policy", "cpg_nodes=fast"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --cache-policy 'cpg_nodes=fast'") and len(err.splitlines()) == 1


def test_runs_command_lists_runs_with_outcomes(code: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    capsys.readouterr()
    assert cli_main(["runs", str(out), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["status"] for record in records] == ["released", "released"]
    first, second = records
    assert first["package"]["fingerprint"] and first["package"]["policy_fingerprint"]
    outcomes = {o["view"]: o["outcome"] for o in second["views"]}
    assert outcomes["cpg_nodes"] == "reused" and outcomes["scope_chain"] == "reused"  # nothing changed
    # every table the build owns is maintained: outputs, extraction tables, run, release, calibration and
    # provenance logs
    # and the staging tables: those of the views it stages, and those the first build staged and the
    # second inlines (it has statistics now), removed
    owned = {*CPG_TABLE_NAMES, *EXTRACT_TABLES, "_runs", "_releases", "_calibration", "decisions", "evidence",
             "edges"}
    staged = {o["view"] for record in records for o in record["views"] if o["policy"] == "delta_staging"}
    assert {m["dataset"] for m in second["maintenance"]} == owned | staged
    removed = {m["dataset"] for m in second["maintenance"]
               if m["decision"]["reasons"] == ["remove.not_staged_by_policy"]}
    assert removed == staged - {o["view"] for o in second["views"] if o["policy"] == "delta_staging"} != set()
    # what the second build did not write is skipped unmeasured: the tables of the first build's release
    # and the staged results it reused; the logs, appended to after the first build's maintenance, are measured
    unchanged = {m["dataset"] for m in second["maintenance"] if m["decision"]["reasons"] == [UNCHANGED_REASON]}
    reused = {o["view"] for o in second["views"] if o["policy"] == "delta_staging" and o["outcome"] == "reused"}
    assert unchanged == {*CPG_TABLE_NAMES, *EXTRACT_TABLES} | reused and reused
    assert cli_main(["runs", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("published") >= 2 and "reused" in text
    assert "what each computed view's plan read" in text  # the first run computed views: their signals
    assert "overlap: 0.00 s of views running at once" in text


def test_a_foreign_resolver_is_refused_at_each_boundary(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = build_driver(code, out, jobs=1, staging="delta").execute(["execution_authority"])
    authority = results["execution_authority"]
    stranger = DeltaTableStore(DatasetCatalog(str(out)))  # same place, another resolver
    for boundary in ("view_registration", "scan_override", "dataset_readiness"):
        with pytest.raises(ResolverIdentityError, match=boundary):
            authority.check_resolver(stranger.catalog, boundary)
    authority.check_resolver(authority.resolver, "view_registration")  # its own passes


def test_capabilities_are_probed(code: Path, tmp_path: Path) -> None:
    capabilities = build_driver(code, tmp_path / "out", jobs=1).execute(["capabilities"])["capabilities"]
    assert capabilities.recursive_queries and capabilities.delta_provider and capabilities.tested_pair
    assert {"md5", "concat_ws", "row_number"} <= set(capabilities.functions)


def test_dag_command_tags_every_node_with_its_role(code: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["dag", str(code), "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    roles = {node["name"]: node["role"] for node in graph["nodes"]}
    assert roles["extraction"] == "extract" and roles["join_plans"] == "inference"
    assert roles["compiled_policy"] == "policy" and roles["name_keys"] == "view"
    assert roles["cpg_nodes"] == "output" and roles["session"] == "authority"
    # a staged view: its query, the saver that stages it, the loader its readers read (a first build's policy)
    assert roles["reference_edges__query"] == "view"
    assert roles["reference_edges__staged"] == roles["reference_edges"] == "materializer"
    assert roles["cpg_nodes__published"] == "materializer"
    assert set(graph["roles"]) == {"authority", "extract", "inference", "materializer", "output", "policy", "view"}


def test_dag_renders_a_png_with_graphviz(code: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "pipeline.png"
    assert cli_main(["dag", str(code), "--png", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == f"wrote {target}"


def test_plan_json_shows_policy_schedule_and_validation(code: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    assert cli_main(["plan", str(code), "--out", str(out), "--cache-policy", "name_keys=delta_staging",
                     "--staging", "delta", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    views = {view["name"]: view for view in report["views"]}
    assert views["name_keys"]["policy"]["cache"] == "delta_staging" and views["name_keys"]["policy"]["override"]
    assert views["scope_chain"]["policy"]["required"]
    assert views["scope_parents"]["registration"]["registration"] == "dataset"
    assert views["call_targets"]["join"]["keys"] == [["callee_ref_id", "ref_id"]]
    assert views["scope_parents"]["wave"] == 0 and views["scope_chain"]["wave"] == 1
    schedule = report["policy"]["schedule"]
    assert schedule["order"] == [name for name, _ in sorted(views.items(),
                                                            key=lambda item: item[1]["schedule"]["position"])]
    assert schedule["order"].index("scope_parents") < schedule["order"].index("scope_chain")
    assert views["scope_chain"]["schedule"]["cost"]["basis"] == "seconds"  # measured by the build before
    assert "md5" in views["structural_edges"]["functions"]
    assert len(report["policy"]["fingerprint"]) == 32
    assert set(report["policy"]["scan"]["session"]["options"]) == {"datafusion.execution.target_partitions",
                                                                    "datafusion.optimizer.max_passes"}
    assert views["name_uses"]["scan"]["options"] == {"datafusion.execution.target_partitions": "1",  # small input
                                                     "datafusion.optimizer.max_passes": "1"}
    assert report["validation"] == []


def test_hamilton_caches_the_planning_chain_across_runs(code: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from driver.factory import CACHED_NODES, CONTEXT, PLANNING_CACHE_FOLDER, plan_driver, specs_version
    from driver.storage import CACHE_ENV, cache_home

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "machine_cache"))  # (not this machine's own)
    out = tmp_path / "out"
    (out / "_hamilton_cache" / "an_old_version").mkdir(parents=True)  # where earlier versions kept it
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    assert not (out / "_hamilton_cache").exists()
    # in the machine's cache, a folder per version of the code: shared by every output; a version no
    # build used for 30 days is removed by the next build, a recent one kept
    assert (cache_home() / PLANNING_CACHE_FOLDER / specs_version() / "metadata_store.db").is_file()
    old, recent = (cache_home() / PLANNING_CACHE_FOLDER / name for name in ("old_version", "recent_version"))
    for version in (old, recent):
        (version / "metadata_store.db").parent.mkdir(parents=True, exist_ok=True)
        (version / "metadata_store.db").write_bytes(b"")
    long_ago = time.time() - 31 * 86_400
    os.utime(old / "metadata_store.db", (long_ago, long_ago))
    build_driver(code, tmp_path / "second", jobs=1)
    assert not old.exists() and recent.is_dir()
    dr = plan_driver(code, tmp_path / "another_output", jobs=1)  # what the factory runs before it builds
    dr.execute(list(CONTEXT))
    logs = dr.cache.logs(dr.cache.last_run_id, level="debug")
    for node in CACHED_NODES:
        events = [str(event) for event in logs[node]]
        assert f"{node}::result_store::get_result::hit" in events, node
        assert f"{node}::adapter::execute_node" not in events, node
    assert "session" not in logs or all("get_result" not in str(event) for event in logs["session"])


def test_a_view_runs_under_its_own_scan_options(code: Path, tmp_path: Path) -> None:
    results = build_driver(code, tmp_path / "out", jobs=1, staging="delta").execute(
        ["execution_authority", "semantic_plan", "view_fingerprints", "source_catalog"])
    authority, plan = results["execution_authority"], results["semantic_plan"]
    partitions, passes = "datafusion.execution.target_partitions", "datafusion.optimizer.max_passes"
    for option in (partitions, passes):
        authority.session.sql(f"SET {option} = 7").collect()  # not what scope_parents' policy says
    assert authority.policy.cache["scope_parents"].cache == "delta_staging"
    query = authority.pending(plan.view("scope_parents"), results["view_fingerprints"]["scope_parents"], {})
    assert authority.stage(query)["outcome"] == "computed_staged"
    for option in (partitions, passes):  # a small input: one partition, one optimizer pass
        setting = authority.session.sql(
            f"SELECT value FROM information_schema.df_settings WHERE name = '{option}'").to_arrow_table()
        expected = authority.policy.scan.views["scope_parents"].options[option]
        assert setting.column(0).to_pylist() == [expected] == ["1"]


# -- Hamilton materializers, attached from the compiled cache policy ----------------------------------


def _node_names(dr) -> set[str]:
    return {variable.name for variable in dr.list_available_variables()}


def test_a_policy_override_changes_the_materializers_and_nothing_else(code: Path, tmp_path: Path) -> None:
    plain = build_driver(code, tmp_path / "plain", jobs=1, staging="delta")
    staged = build_driver(code, tmp_path / "staged", jobs=1, staging="delta",
                          cache_overrides={"name_keys": "delta_staging"})
    assert plain.execute(["compiled_policy"])["compiled_policy"].cache["name_keys"].cache == "none"
    added = {"name_keys__query", "name_keys__staged", "load_data.name_keys"}
    assert _node_names(staged) - _node_names(plain) == added
    assert _node_names(plain) - _node_names(staged) == set()
    tags = {v.name: v.tags for v in staged.list_available_variables()}
    assert tags["name_keys__staged"]["hamilton.data_saver.sink"] == "cpgflow_delta"
    assert tags["name_keys"]["hamilton.data_loader.source"] == "cpgflow_delta"
    # the readers of name_keys read the loader, which reads what the saver wrote
    results = staged.execute(["key_scopes", "name_keys__staged", "load_data.name_keys"])
    written = results["name_keys__staged"]
    assert written["outcome"] == "computed_staged" and written["rows"] > 0
    assert written["table_uri"] == str(tmp_path / "staged" / "_staging" / "name_keys")
    assert results["load_data.name_keys"][1] == written
    assert "name_keys" in str(results["key_scopes"].logical_plan().display_indent())


def test_savers_return_what_they_wrote_and_hamilton_keeps_it(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_driver(code, out, jobs=1, staging="delta").execute(["published_cpg", "cpg_nodes__published"])
    written = first["cpg_nodes__published"]
    assert written["table_uri"] == str(out / "cpg_nodes") and written["outcome"] == "published"
    assert written["version"] == first["published_cpg"]["cpg_nodes"] == 0
    assert written["rows"] == DeltaTableStore(DatasetCatalog(str(out))).statistics("cpg_nodes")[0]
    with pytest.raises(NotReleased):  # written, not released: no reader sees it
        open_session(out)
    # an unreleased run's table is never reused: the next build writes it again, then releases it
    again = build_driver(code, out, jobs=1, staging="delta").execute(["build_summary", "cpg_nodes__published"])
    assert again["cpg_nodes__published"]["outcome"] == "published"
    assert again["build_summary"].release == 1
    third = build_driver(code, out, jobs=1, staging="delta").execute(["cpg_nodes__published"])["cpg_nodes__published"]
    # reused: nothing written; its version is the table's current one (maintenance commits since: vacuum)
    current = DeltaTableStore(DatasetCatalog(str(out))).version("cpg_nodes")
    assert third == {**again["cpg_nodes__published"], "outcome": "reused", "rows": None, "version": current}


def test_staging_tables_keep_one_version_and_those_no_longer_staged_are_removed(code: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_driver(code, out, jobs=1, staging="delta").execute(["build_summary"])
    (code / "shop" / "extra.py").write_text("def added():\n    return 1\n")
    build_driver(code, out, jobs=1, staging="delta", cache_overrides={"binding_ranks": "none"}).execute(
        ["build_summary"])
    assert (out / "_staging" / "scope_chain").exists() and not (out / "_staging" / "binding_ranks").exists()
    record = _runs(out)[-1]
    removed = [m for m in record.maintenance if m.dataset == "binding_ranks"]
    assert [m.decision.reasons for m in removed] == [("remove.not_staged_by_policy",)]
    # scope_chain was recomputed (its inputs changed) and vacuumed: its files are its latest version's
    table = DeltaTable(str(out / "_staging" / "scope_chain"))
    assert table.version() >= 1
    on_disk = {path.name for path in (out / "_staging" / "scope_chain").glob("*.parquet")}
    assert on_disk == {Path(uri).name for uri in table.file_uris()}


def _build_with_cache(code: Path, out: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**cli_env(), "CPGFLOW_CACHE_DIR": str(cache)}
    return subprocess.run([str(CPGFLOW), "build", str(code), "--out", str(out), "-q", "-j", "1"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize("damage", ["folder_under_a_file", "store_not_a_file", "results_cut_short"])
def test_a_planning_cache_that_cannot_be_used_is_planned_without(code: Path, tmp_path: Path, damage: str) -> None:
    """The planning cache is the machine's: a build plans without it where its folder cannot be made
    (here it would be under a file) or its store opened (a folder stands where the database goes),
    and computes again a result it finds damaged (each cut to nothing, as a crash can leave a file)."""
    from driver.factory import PLANNING_CACHE_FOLDER, specs_version

    cache = tmp_path / "cache"
    version = cache / PLANNING_CACHE_FOLDER / specs_version()
    if damage == "folder_under_a_file":
        cache.write_text("")
    elif damage == "store_not_a_file":
        (version / "metadata_store.db").mkdir(parents=True)
    else:
        assert _build_with_cache(code, tmp_path / "first", cache).returncode == 0
        results = [path for path in version.iterdir() if path.is_file() and path.name != "metadata_store.db"]
        assert len(results) >= 5  # (the planning chain's results)
        for path in results:
            path.write_bytes(b"")
    out = tmp_path / "out"
    done = _build_with_cache(code, out, cache)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert query(out, "SELECT count(*) AS n FROM cpg_nodes")[0]["n"] > 0
