"""Moving runs between files: a run's samples to Parquet (`engine export`), the complete runs of
another SideNets DB into this one (`engine import`, e.g. runs trained on a GPU machine)."""
from __future__ import annotations

import os

import pyarrow as pa

from engine.errors import UserError


class Transfers:
    """Mixed into Store (uses its connect / list_runs / get_run)."""

    def import_runs(self, source) -> list[str]:
        """Copy the complete runs of another SideNets DB (e.g. trained on a GPU machine) that this
        one does not hold, in one transaction; their checkpoints stay behind (set to NULL)."""
        wanted = [r["run_id"] for r in source.list_runs()]  # checks the source's schema too
        if self.path.resolve() == source.path.resolve():
            raise UserError("cannot import a database into itself")
        with self.connect(write=True) as con:
            have = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
            new = [r for r in wanted if r not in have]
            if not new:
                return []
            con.execute("ATTACH ? AS src (READ_ONLY)", [str(source.path)])
            try:
                con.execute("BEGIN TRANSACTION")
                con.execute("CREATE TEMP TABLE wanted (run_id VARCHAR)")
                con.executemany("INSERT INTO wanted VALUES (?)", [[r] for r in new])
                for table in ("runs", "epochs", "costs", "samples", "latency"):
                    con.execute(f"INSERT INTO {table} SELECT * FROM src.{table} WHERE run_id IN (SELECT run_id FROM wanted)")
                con.execute("UPDATE runs SET checkpoint = NULL WHERE run_id IN (SELECT run_id FROM wanted)")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.execute("DETACH src")
        return new

    def export_parquet(self, run_id: str, out: str | os.PathLike) -> int:
        """Write the run's per-sample rows (split, idx, label, head, logits) to a Parquet file."""
        self.get_run(run_id)
        with self.connect() as con:
            table = con.sql("SELECT split, idx, label, head, logits FROM samples WHERE run_id = $1 "
                            "ORDER BY split, head, idx", params=[run_id]).to_arrow_table()
        import pyarrow.parquet as pq

        try:
            pq.write_table(table, out)
        except (OSError, pa.ArrowException) as err:
            raise UserError(f"cannot write {out}: {str(err).splitlines()[0] if str(err) else err}") from None
        return table.num_rows

