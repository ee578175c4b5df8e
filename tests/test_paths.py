"""engine.paths: the one place that reads SIDENETS_*; every path absolute, a folder never a DB."""
import re
import subprocess

import pytest

from engine import paths
from engine.errors import UserError

from helpers import REPO


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SIDENETS_DATA", "SIDENETS_DB", "SIDENETS_JOBS", "SIDENETS_FEATURES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_live_in_the_repos_data_folder(clean_env):
    assert paths.REPO == REPO
    assert paths.data_dir() == REPO / "data"
    assert paths.db_path() == REPO / "data" / "sidenets.duckdb"
    assert paths.jobs_dir() == REPO / "data" / "jobs"
    assert paths.checkpoints_dir() == REPO / "data" / "checkpoints"
    assert paths.features_dir() == REPO / "data" / "features"


def test_environment_variables(clean_env, tmp_path):
    clean_env.setenv("SIDENETS_DATA", str(tmp_path / "d"))
    assert paths.data_dir() == tmp_path / "d"
    assert paths.db_path() == tmp_path / "d" / "sidenets.duckdb"  # the default DB follows the data folder
    assert paths.features_dir() == tmp_path / "d" / "features"
    clean_env.setenv("SIDENETS_DB", str(tmp_path / "x" / "runs.duckdb"))
    assert paths.db_path() == tmp_path / "x" / "runs.duckdb"
    assert paths.jobs_dir() == tmp_path / "x" / "jobs"  # jobs and checkpoints sit beside the DB
    assert paths.checkpoints_dir() == tmp_path / "x" / "checkpoints"
    clean_env.setenv("SIDENETS_JOBS", str(tmp_path / "queue"))
    clean_env.setenv("SIDENETS_FEATURES", str(tmp_path / "feats"))
    assert paths.jobs_dir() == tmp_path / "queue" and paths.features_dir() == tmp_path / "feats"
    # an explicit --db wins over $SIDENETS_DB
    assert paths.db_path(tmp_path / "other.duckdb") == tmp_path / "other.duckdb"
    assert paths.checkpoints_dir(tmp_path / "y" / "z.duckdb") == tmp_path / "y" / "checkpoints"


def test_relative_paths_are_made_absolute_once(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    clean_env.setenv("SIDENETS_DB", "sub/runs.duckdb")
    got = paths.db_path()
    assert got.is_absolute() and got == tmp_path / "sub" / "runs.duckdb"
    assert paths.db_path("rel.duckdb") == tmp_path / "rel.duckdb"
    clean_env.setenv("SIDENETS_DATA", "data2")
    assert paths.data_dir() == tmp_path / "data2"
    clean_env.setenv("HOME", str(tmp_path / "home"))
    clean_env.setenv("SIDENETS_JOBS", "~/jobs")
    assert paths.jobs_dir() == tmp_path / "home" / "jobs"


def test_a_folder_is_never_a_database(clean_env, tmp_path):
    with pytest.raises(UserError, match="is a folder; give a .duckdb file"):
        paths.db_path(tmp_path)
    clean_env.setenv("SIDENETS_DB", str(tmp_path))
    with pytest.raises(UserError, match="is a folder"):
        paths.db_path()


@pytest.mark.parametrize("value", ["", "   "])
@pytest.mark.parametrize("name, fn", [("SIDENETS_DB", paths.db_path), ("SIDENETS_DATA", paths.data_dir),
                                      ("SIDENETS_JOBS", paths.jobs_dir), ("SIDENETS_FEATURES", paths.features_dir)])
def test_an_empty_variable_is_a_user_error(clean_env, name, fn, value):
    clean_env.setenv(name, value)
    with pytest.raises(UserError, match=rf"\${name} is set but empty"):
        fn()


def test_checkpoint_files_are_named_by_run_id(clean_env, tmp_path):
    db = tmp_path / "runs.duckdb"
    assert paths.checkpoint_file(db, "resnet18-s0-ab12") == tmp_path / "checkpoints" / "resnet18-s0-ab12.safetensors"
    for bad in ("../escape", "a/b", "", ".hidden", None):
        assert paths.checkpoint_file(db, bad) is None, bad


def test_git_commit(monkeypatch):
    assert re.fullmatch(r"[0-9a-f]{40}", paths.git_commit())

    def no_git(*_a, **_k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert paths.git_commit() is None
