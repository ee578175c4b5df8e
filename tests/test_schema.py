"""engine.store.schema: a version-1 file (written before versioning) is refused by readers with the
migrate message and migrated in one transaction by a writer; other files are one-line UserErrors."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pytest

from engine.errors import UserError
from engine.runtime.checkpoint import path_of
from engine.store import SCHEMA_VERSION, Store, schema

from helpers import STORE_META, V1_RUNS, make_v1, run_payload


def raw_runs(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT run_id, config, checkpoint FROM runs").fetchall()
        return {r: (json.loads(c), ckpt) for r, c, ckpt in rows}
    finally:
        con.close()


def meta_version(db: Path) -> str | None:
    con = duckdb.connect(str(db), read_only=True)
    try:
        if "meta" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}:
            return None
        return con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def v1(tmp_path):
    return make_v1(tmp_path / "data" / "old.duckdb", tmp_path / "elsewhere")


def test_a_reader_refuses_a_version_1_file_with_the_migrate_command(v1):
    with pytest.raises(UserError, match=r"needs a migration \(schema 1, this version uses 2\)") as err:
        Store(v1).list_runs()
    assert f"python -m engine migrate --db {v1}" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="needs a migration"):
        Store(v1).logits("r18")
    assert meta_version(v1) is None  # reading changed nothing


def test_migration_to_version_2(v1, tmp_path):
    assert SCHEMA_VERSION == max(schema.MIGRATIONS) == 2
    assert Store(v1).migrate() == 2
    assert meta_version(v1) == "2"
    runs = raw_runs(v1)
    config, ckpt = runs["r18"]
    assert config["stem"] == "torchvision"  # ResNets before versions had the max-pool stem
    assert config["patience"] == 6  # PyTorch's patience 5 decayed after 6 bad epochs
    assert ckpt == "checkpoints/r18.safetensors"  # inside the DB's folder: relative now
    assert path_of(Store(v1), ckpt) == v1.parent / "checkpoints" / "r18.safetensors"
    config, ckpt = runs["eff"]
    assert "stem" not in config and "pooling" not in config and config["patience"] == 3
    assert ckpt == str(tmp_path / "elsewhere" / "eff.safetensors")  # elsewhere on disk: kept absolute, still read
    assert path_of(Store(v1), ckpt) == Path(ckpt)
    assert runs["mini"][0]["pooling"] == "side-mean-head-cls"  # sentence-transformers: the old mixed pooling
    assert runs["bert"][0]["pooling"] == "cls" and runs["bert"][0]["stem"] is None
    assert runs["sgd"][0] == V1_RUNS["sgd"][1]  # a stem given already, and a one-cycle run's patience: unchanged
    assert {r["run_id"] for r in Store(v1).list_runs()} == set(V1_RUNS)
    # migrating again changes nothing (no second patience + 1)
    assert Store(v1).migrate() == 2 and raw_runs(v1) == runs


def test_a_writer_migrates_when_it_opens_the_file(v1):
    Store(v1).start_run({**STORE_META, "run_id": "new"})
    assert meta_version(v1) == "2" and raw_runs(v1)["r18"][0]["stem"] == "torchvision"


def test_a_failed_migration_leaves_the_file_at_version_1(v1, monkeypatch):
    def broken(con, path):
        schema._to_v2(con, path)
        raise RuntimeError("power cut")

    monkeypatch.setitem(schema.MIGRATIONS, 2, broken)
    before = raw_runs(v1)
    with pytest.raises(RuntimeError, match="power cut"):
        Store(v1).migrate()
    assert meta_version(v1) is None and raw_runs(v1) == before  # one transaction: rolled back whole


def test_a_newer_file_is_refused(tmp_path):
    store = Store(tmp_path / "new.duckdb")
    store.migrate()
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    for call in (store.list_runs, store.migrate):
        with pytest.raises(UserError, match=r"written by a newer SideNets Explorer \(schema 3"):
            call()


def test_a_foreign_duckdb_file_is_one_line_user_error(tmp_path):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.close()
    for call in (Store(db).list_runs, Store(db).migrate):
        with pytest.raises(UserError, match="is a DuckDB file but not a SideNets database") as err:
            call()
        assert "its tables: customers" in str(err.value) and "\n" not in str(err.value)
    # a runs table of another shape is not ours either
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE runs (run_id VARCHAR)")
    con.close()
    with pytest.raises(UserError, match="not a SideNets database"):
        Store(db).list_runs()


def test_a_sqlite_file_is_one_line_user_error(tmp_path):
    db = tmp_path / "runs.duckdb"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (run_id TEXT)")
    con.commit()
    con.close()
    for call in (Store(db).list_runs, lambda: Store(db).start_run(STORE_META)):
        with pytest.raises(UserError, match="is a SQLite database; give a SideNets .duckdb file") as err:
            call()
        assert "\n" not in str(err.value)


def test_a_current_file_round_trips(tmp_path):
    store = Store(tmp_path / "v2.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    assert meta_version(store.path) == str(SCHEMA_VERSION)
    assert [r["run_id"] for r in store.list_runs()] == [run_id]
