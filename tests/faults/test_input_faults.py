"""Bad input at every boundary (CLI flags, TOML files, paths, environment variables) is refused with one
exact `error:` line and exit status 2, before anything is written: the data folder is left as it was."""
from __future__ import annotations

import pytest
from faultkit import META, TINY, complete_run, counts, engine_cli, refused

from engine import mainnets

BAD_NUMBER = "error: {} must be a finite number, got {}"
SEEDS = "error: seeds must be a list of 1 to 50 integers in [0, 2^31), got {}"
ARG = "python -m engine train: error: argument {}"


def local_path(name: str) -> str:
    return (f"error: model {name!r} is a local path; give a registered model name ({', '.join(mainnets.names())}), "
            "a Hugging Face encoder id or a saved Hugging Face model folder (with its config.json)")


FLAGS = [  # (flags after a tiny valid training, the exact last stderr line)
    (["--alpha", "nan"], BAD_NUMBER.format("alpha", "nan")),
    (["--alpha", "inf"], BAD_NUMBER.format("alpha", "inf")),
    (["--alpha", "-1"], "error: alpha must be in [0.0, 1000000.0], got -1.0"),
    (["--lr", "nan"], BAD_NUMBER.format("lr", "nan")),
    (["--lr", "-0.1"], "error: lr must be in (0.0, 10.0], got -0.1"),
    (["--lr", "0"], "error: lr must be in (0.0, 10.0], got 0.0"),
    (["--head-lr", "nan"], BAD_NUMBER.format("head_lr", "nan")),
    (["--head-lr", "0"], "error: head_lr must be in (0.0, 10.0], got 0.0"),
    (["--lr-factor", "0"], "error: lr_factor must be in (0.0, 1.0], got 0.0"),
    (["--momentum", "2"], "error: momentum must be in [0.0, 1.0], got 2.0"),
    (["--weight-decay", "-1"], "error: weight_decay must be in [0.0, 1.0], got -1.0"),
    (["--label-smoothing", "nan"], BAD_NUMBER.format("label_smoothing", "nan")),
    (["--patience", "-3"], ARG.format("--patience: must be at least 1, got -3")),
    (["--patience", "0"], ARG.format("--patience: must be at least 1, got 0")),
    (["--max-length", "-5"], ARG.format("--max-length: must be at least 1, got -5")),
    (["--max-length", "2"], "error: max_length must be between 4 and 8192, got 2"),
    (["--seeds", "-1"], SEEDS.format("[-1]")),
    (["--seeds", "4294967296"], SEEDS.format("[4294967296]")),
    (["--seeds", "x"], ARG.format("--seeds: invalid int value: 'x'")),
    (["--epochs", "0"], ARG.format("--epochs: must be at least 1, got 0")),
    (["--batch-size", "1"], "error: batch_size must be between 2 and 1048576, got 1"),
    (["--limit", "0"], ARG.format("--limit: must be at least 1, got 0")),
    (["--hidden", "0"], ARG.format("--hidden: must be at least 1, got 0")),
    (["--device", "foo"], "error: unknown device 'foo'; choose auto, cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "error: unknown device 'cuda:x'; choose auto, cpu, cuda or cuda:N"),
    (["--model", "./models/foo"], local_path("./models/foo")),
    (["--model", "~/models/foo"], local_path("~/models/foo")),
    (["--model", "inputs/enc"], local_path("inputs/enc")),  # a folder that exists, relative to the cwd
    (["--dataset", "nope"], "error: unknown dataset 'nope'; choose one of: cifar10, fashion-mnist, rt-polarity, sst2"),
    (["--attach", "layer9"], "error: attach point 'layer9' is not valid for resnet18; choose one of: layer1, layer2, "
                             "layer3"),
]


@pytest.mark.parametrize("flags, message", FLAGS, ids=[" ".join(f) for f, _ in FLAGS])
def test_train_flags(sandbox, monkeypatch, flags, message):
    (sandbox.inputs / "enc").mkdir()
    monkeypatch.chdir(sandbox.root)
    before = sandbox.data_state()
    refused(engine_cli("train", *TINY, *flags), message)
    assert sandbox.data_state() == before  # no DB, no checkpoint folder


BASE = {"model": '"resnet18"', "dataset": '"fashion-mnist"', "epochs": "1", "limit": "16", "batch_size": "8",
        "device": '"cpu"'}
TOML = [  # (a TOML line added to a valid tiny config, the exact message; {path} is the file)
    ('lr = "fast"', "error: lr must be a finite number, got 'fast'"),
    ("alpha = nan", BAD_NUMBER.format("alpha", "nan")),
    ("alpha = -inf", BAD_NUMBER.format("alpha", "-inf")),
    ("lr = -3e-4", "error: lr must be in (0.0, 10.0], got -0.0003"),
    ("patience = -1", "error: patience must be between 1 and 10000, got -1"),
    ("patience = 2.5", "error: patience must be an integer, got 2.5"),
    ("max_length = -5", "error: max_length must be between 4 and 8192, got -5"),
    ("seeds = [-1]", SEEDS.format("[-1]")),
    ("seeds = [true]", SEEDS.format("[True]")),
    ('seeds = "0 1"', SEEDS.format("'0 1'")),
    ("epochs = 1.5", "error: epochs must be an integer, got 1.5"),
    ("limit = 1e400", "error: limit must be an integer, got inf"),
    ('attach = "layer1"', "error: attach must be a list of attach point names, got 'layer1'"),
    ('pretrained = "yes"', "error: pretrained must be true or false, got 'yes'"),
    ("model = 3", "error: model must be a non-empty string, got 3"),
    ('device = "foo"', "error: unknown device 'foo'; choose auto, cpu, cuda or cuda:N"),
    ('model = "./local"', local_path("./local")),
    ("speed = 3", "error: {path}: unknown key(s) speed"),
    ("runs = 3", "error: {path}: [[runs]] must be a list of tables"),
    ("[[runs]]\nmodel = 3", "error: model must be a non-empty string, got 3"),
    ("lr = ", "error: config file {path} is not valid TOML: Invalid value (at line 7, column 6)"),
]


@pytest.mark.parametrize("line, message", TOML, ids=[line.replace("\n", " ") for line, _ in TOML])
def test_toml_values(sandbox, line, message):
    key = line.split("=")[0].strip()
    path = sandbox.inputs / "config.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in BASE.items() if k != key) + line + "\n")
    before = sandbox.data_state()
    refused(engine_cli("train", "--config", path), message.format(path=path))
    assert sandbox.data_state() == before


def test_config_files_that_are_not_toml_files(sandbox):
    binary = sandbox.inputs / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    before = sandbox.data_state()
    refused(engine_cli("train", "--config", sandbox.inputs), f"error: config file {sandbox.inputs} is a folder; "
                                                            "give a .toml file")
    refused(engine_cli("train", "--config", sandbox.inputs / "nope.toml"),
            f"error: config file {sandbox.inputs / 'nope.toml'} does not exist")
    refused(engine_cli("train", "--config", binary), f"error: config file {binary} cannot be read: 'utf-8' codec "
                                                     "can't decode byte 0xff in position 0: invalid start byte")
    refused(engine_cli("train", "--config", binary, "--preset", "smoke"),
            "error: give either --preset or --config, not both")
    assert sandbox.data_state() == before


BENCH, SWEEP = "python -m engine bench metrics: error: argument ", "python -m engine sweep: error: argument "
OTHER = [  # (argv, exact message); {db} the sandbox's DB, {root} the sandbox
    (["bench", "metrics", "--n", "0"], BENCH + "--n: must be at least 1, got 0"),
    (["bench", "metrics", "--n", "-1"], BENCH + "--n: must be at least 1, got -1"),
    (["sweep", "r", "--theta", "2"], SWEEP + "--theta: theta must be in [0, 1], got 2.0"),
    (["sweep", "r", "--theta", "nan"], SWEEP + "--theta: theta must be in [0, 1], got nan"),
    (["delete", "r1"], "error: no database at {db}"),
    (["--db", "{root}/typo/x.duckdb", "delete", "r1"], "error: no database at {root}/typo/x.duckdb"),
    (["--db", "{root}/dta/sidenets.duckdb", "delete", "r1", "--cancel"], "error: no database at "
                                                                         "{root}/dta/sidenets.duckdb"),
    (["migrate"], "error: no database at {db}"),
    (["runs"], "error: no database at {db}: train a run first (python -m engine train --preset smoke)"),
    (["--db", "{root}/inputs", "runs"], "error: the database path {root}/inputs is a folder; give a .duckdb file"),
    (["export", "r", "--out", "{root}/inputs/x.parquet"], "error: no database at {db}"),
    (["jobs", "cancel", "../x"], "error: invalid job id '../x' (letters, digits, '.', '_', '-')"),
    (["jobs", "cancel", ".."], "error: invalid job id '..' (letters, digits, '.', '_', '-')"),
    (["jobs", "cancel", "nope"], "error: no job 'nope' in {root}/data/jobs"),
]


@pytest.mark.parametrize("argv, message", OTHER, ids=[" ".join(a) for a, _ in OTHER])
def test_other_commands_on_a_fresh_folder(sandbox, argv, message):
    """Nothing exists yet: each is refused and creates nothing (a mistyped --db makes no DB)."""
    fill = {"db": sandbox.db, "root": sandbox.root}
    before = sandbox.data_state()
    refused(engine_cli(*[a.format(**fill) for a in argv]), message.format(**fill))
    assert sandbox.data_state() == before
    assert not (sandbox.root / "typo").exists() and not (sandbox.root / "dta").exists()


def test_export_and_delete_on_an_existing_db(sandbox):
    from engine.store import Store

    run = complete_run(Store(sandbox.db))
    rows, before = counts(sandbox.db), sandbox.data_state()
    out = sandbox.inputs
    refused(engine_cli("export", run, "--out", out), f"error: --out {out} is a folder; give a file name, e.g. "
                                                     f"{out / (run + '.parquet')}")
    refused(engine_cli("export", run, "--out", out / "no" / "x.parquet"),
            f"error: --out {out / 'no' / 'x.parquet'}: the folder {out / 'no'} does not exist")
    refused(engine_cli("export", "nope", "--out", out / "x.parquet"),
            f"error: no run 'nope' in {sandbox.db} (see: python -m engine runs)")
    refused(engine_cli("delete", "nope"), f"error: no run 'nope' in {sandbox.db}")
    refused(engine_cli("delete", "../../outside/canary"), f"error: no run '../../outside/canary' in {sandbox.db}")
    assert counts(sandbox.db) == rows and sandbox.data_state() == before
    assert sorted(p.name for p in out.iterdir()) == []  # no partial Parquet file


@pytest.mark.parametrize("name, value", [("SIDENETS_DB", ""), ("SIDENETS_DB", "  "), ("SIDENETS_JOBS", ""),
                                         ("SIDENETS_DATA", "")])
def test_empty_environment_variables(sandbox, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    if name == "SIDENETS_DATA":
        monkeypatch.delenv("SIDENETS_DB")
    argv = ["jobs", "list"] if name == "SIDENETS_JOBS" else ["runs"]
    before = sandbox.data_state()
    refused(engine_cli(*argv), f"error: ${name} is set but empty or invalid; unset it or give a path")
    assert sandbox.data_state() == before


def test_a_jobs_folder_that_is_a_file(sandbox, monkeypatch):
    jobs = sandbox.inputs / "jobs"
    jobs.write_text("not a folder")
    monkeypatch.setenv("SIDENETS_JOBS", str(jobs))
    for argv in (["jobs", "list"], ["jobs", "clear"], ["jobs", "cancel", "j1"]):
        refused(engine_cli(*argv), f"error: the jobs folder {jobs} is not a folder")
    assert jobs.read_text() == "not a folder"


def test_a_run_id_that_could_name_a_path_is_refused(sandbox):
    from engine.errors import UserError
    from engine.store import Store

    store = Store(sandbox.db)
    with pytest.raises(UserError) as err:
        store.start_run({**META, "run_id": "../../outside/canary"})
    assert str(err.value) == "invalid run id '../../outside/canary' (letters, digits, '.', '_', '-')"
    assert not sandbox.db.exists() or counts(sandbox.db)["runs"] == 0
    run = store.start_run({**META, "model": "org/encoder"})  # a hub id: no '/' in the id
    assert run.startswith("org_encoder-fashion-mnist-s0-")


def _image(fmt: str = "PNG", size=(8, 8)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size).save(out, fmt)
    return out.getvalue()


UPLOADS = {  # what the live demo's upload boundary says (engine.runtime.demo.decode_image)
    "empty": (lambda: b"", "the uploaded file is empty"),
    "over 20 MB": (lambda: b"\0" * (20 * 2**20 + 1),
                   "the file is 20,971,521 bytes; the demo accepts images up to 20,971,520 bytes (20 MB)"),
    "text": (lambda: b"hello world" * 10, "the file is not a readable PNG or JPEG image (UnidentifiedImageError)"),
    "gif": (lambda: _image("GIF"), "this is a GIF image; upload a PNG or JPEG"),
    "truncated png": (lambda: _image()[:40], "the file is not a readable PNG or JPEG image (UnidentifiedImageError)"),
}


@pytest.mark.parametrize("name", UPLOADS)
def test_uploads(name):
    from engine.errors import UserError
    from engine.runtime.demo import decode_image

    make, message = UPLOADS[name]
    with pytest.raises(UserError) as err:
        decode_image(make())
    assert str(err.value) == message
