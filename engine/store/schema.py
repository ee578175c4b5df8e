"""The DB's tables, its schema version and the migrations between versions.

Version 1: the tables below without `meta` (files written before versioning).
Version 2: `meta` holds schema_version; run configs name the ResNet stem and the text pooling
their runs used (older ones: the torchvision stem, [CLS] heads with mean-pooled SideNets for the
sentence-transformers encoders), `patience` counts epochs the way the paper does (older runs
decayed after patience + 1 bad epochs), and checkpoints are stored relative to the DB's folder.

A writer migrates an older file in one transaction when it opens it; a reader (the explorer)
refuses it with a message saying how to upgrade. A later change adds `MIGRATIONS[n]`.
"""
from __future__ import annotations

import json
from pathlib import Path

from engine.errors import UserError
from engine.faults import point

SCHEMA_VERSION = 2

TABLES = {
    "runs": """run_id VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, created_at TIMESTAMP, finished_at TIMESTAMP,
        model VARCHAR, dataset VARCHAR, mode VARCHAR, seed INTEGER, attach VARCHAR[], sidenet_hidden INTEGER,
        sidenet_order VARCHAR, num_classes INTEGER, class_names VARCHAR[], config JSON, device VARCHAR,
        versions JSON, git_commit VARCHAR, wall_time_s DOUBLE, checkpoint VARCHAR, pid INTEGER, host VARCHAR,
        error VARCHAR""",
    "epochs": "run_id VARCHAR, epoch INTEGER, lr DOUBLE, train_loss DOUBLE, val_loss DOUBLE, val_acc JSON, "
              "seconds DOUBLE",
    "costs": "run_id VARCHAR, attach VARCHAR, part VARCHAR, params BIGINT, macs DOUBLE",
    "samples": "run_id VARCHAR, split VARCHAR, idx INTEGER, label INTEGER, head VARCHAR, logits FLOAT[]",
    "latency": """run_id VARCHAR, attach VARCHAR, device VARCHAR, part VARCHAR, batch_size INTEGER,
        median_ms DOUBLE, p95_ms DOUBLE, throughput DOUBLE, measured_at TIMESTAMP""",
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
}
# (name, type) of every column: a file whose tables differ is not a SideNets DB
COLUMNS = {name: [tuple(c.split()[:2]) for c in columns.split(",")] for name, columns in TABLES.items()}
RUN_COLUMNS = ["run_id", "status", "created_at", "finished_at", "model", "dataset", "mode", "seed", "attach",
               "sidenet_hidden", "sidenet_order", "num_classes", "class_names", "config", "device", "versions",
               "git_commit", "wall_time_s", "checkpoint", "pid", "host", "error"]
# TrainConfig fields added after runs were stored, with what those runs did (read back into their config)
CONFIG_FIELDS_ADDED = {"augment": "crop-flip", "head_lr": None}


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_schema = 'main'").fetchall()}


def _columns(con, table: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                          "table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
                                          [table]).fetchall()]


def version(con, path: Path) -> int | None:
    """The file's schema version; None for a file with no table yet. A DuckDB file holding other
    tables (not a SideNets DB) or a newer version is a UserError."""
    tables = _tables(con)
    if not tables:
        return None
    expected = {name for name in TABLES if name != "meta"}
    wrong = sorted(t for t in expected | ({"meta"} & tables) if t in tables and _columns(con, t) != COLUMNS[t])
    if not expected <= tables or wrong:
        why = f"a '{wrong[0]}' table of another schema" if wrong else "no SideNets tables"
        raise UserError(f"{path} is a DuckDB file but not a SideNets database ({why}; its tables: "
                        f"{', '.join(sorted(tables)) or 'none'}); give another --db / SIDENETS_DB")
    if "meta" not in tables:
        return 1
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    try:
        found = int(row[0][0]) if row else 1
    except (TypeError, ValueError):
        raise UserError(f"{path} has an unreadable schema version {str(row[0][0])[:20]!r}; "
                        "it is not a SideNets database") from None
    if found > SCHEMA_VERSION:
        raise UserError(f"{path} was written by a newer SideNets Explorer (schema {found}; this one reads up to "
                        f"{SCHEMA_VERSION}); upgrade this checkout")
    return found


def check_readable(con, path: Path) -> bool:
    """For a reader: True when the file has the current schema, False when it has no table yet."""
    found = version(con, path)
    if found is not None and found < SCHEMA_VERSION:
        raise UserError(f"{path} needs a migration (schema {found}, this version uses {SCHEMA_VERSION}): run "
                        f"`python -m engine migrate --db {path}` (any training command does it too)")
    return found is not None


def ensure(con, path: Path) -> None:
    """For a writer: create the tables of a new file, or migrate an older one, in one transaction."""
    found = version(con, path)
    if found == SCHEMA_VERSION:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        if found is None:
            for name, columns in TABLES.items():
                con.execute(f"CREATE TABLE {name} ({columns})")
        else:
            for target in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](con, path)
                point("schema:migrated-uncommitted")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _to_v2(con, path: Path) -> None:
    con.execute(f"CREATE TABLE meta ({TABLES['meta']})")
    sentence_encoders = ("minilm-l6", "mpnet-base")
    for run_id, model, config, ckpt in con.execute("SELECT run_id, model, config, checkpoint FROM runs").fetchall():
        cfg = json.loads(config) if config else {}
        if model and model.startswith("resnet"):
            cfg.setdefault("stem", "torchvision")
        elif model and not model.startswith("efficientnet"):
            cfg.setdefault("pooling", "side-mean-head-cls" if model in sentence_encoders else "cls")
        if "patience" in cfg and "schedule" not in cfg:
            cfg["patience"] = int(cfg["patience"]) + 1  # what PyTorch's ReduceLROnPlateau(patience=p) did
        if ckpt and Path(ckpt).is_absolute():
            try:
                ckpt = str(Path(ckpt).relative_to(path.parent))
            except ValueError:
                pass  # elsewhere on disk: keep the absolute path (still read)
        con.execute("UPDATE runs SET config = ?, checkpoint = ? WHERE run_id = ?", [json.dumps(cfg), ckpt, run_id])


MIGRATIONS = {2: _to_v2}
