"""Train: launch training as a background job (a queue, one worker), watch it, cancel it."""
import pandas as pd
import streamlit as st

from engine.errors import UserError
from engine.jobs import ACTIVE, BROKEN
from engine.jobs.progress import parse_seeds, progress_text
from explorer import cache
from explorer.formatting import md_escape

st.title("Train")


@st.cache_resource(show_spinner="Loading the training catalogue (once)...")
def catalogue() -> dict:
    """Presets, models, datasets and the device jobs will train on (imports torch once)."""
    from engine import datasets, mainnets
    from engine.config import MODE_HELP, MODES
    from engine.presets import PRESETS
    from engine.runtime.device import device_label

    return {"presets": {name: [c.to_dict() for c in p.configs] for name, p in PRESETS.items()},
            "preset_help": {name: f"{p.summary} ({p.protocol})" for name, p in PRESETS.items()}, "modes": MODES,
            "mode_help": MODE_HELP, "datasets": {n: datasets.get(n).kind for n in datasets.names()},
            "models": {kind: mainnets.names(kind) for kind in ("image", "text")},
            "device": device_label()}


@st.cache_data(show_spinner=False)
def attach_options(model: str) -> list[str] | None:
    """Valid attach points (every registered MainNet declares its blocks; none needs a download)."""
    from engine import mainnets

    try:
        return mainnets.attach_names(model)
    except UserError:
        return None


cat = catalogue()
try:
    queue = cache.job_queue()
except UserError as err:
    st.error(f"Cannot use the job queue: {md_escape(err)}", icon=":material/error:")
    st.stop()
device = cat["device"]
st.caption(f"Jobs run in a background process, one at a time, on **{md_escape(device)}**"
           + ("" if not device.startswith("cpu") else " (no CUDA GPU visible to torch)")
           + f". Database: {md_escape(queue.db)}; job folders: {md_escape(queue.dir)}. Finished runs appear on the "
             "other pages without restarting the app.")

with st.container(border=True):
    source = st.radio("What to train", ["preset", "custom"], horizontal=True, key="train_source",
                      format_func={"preset": "a preset", "custom": "a custom configuration"}.get)
    submissions: list[tuple[dict, str]] = []
    if source == "preset":
        names = list(cat["presets"])
        name = st.selectbox("Preset", names, index=names.index("smoke") if "smoke" in names else 0, key="train_preset",
                            help="\n\n".join(f"**{n}**: {h}" for n, h in cat["preset_help"].items()))
        cfgs = cat["presets"][name]
        st.dataframe(pd.DataFrame([{"model": c["model"], "dataset": c["dataset"], "mode": c["mode"],
                                    "epochs": str(c["epochs"] or "paper default"), "limit": str(c["limit"] or "all"),
                                    "seeds": " ".join(map(str, c["seeds"]))} for c in cfgs]),
                     hide_index=True, key="train_preset_table")
        seeds_text = st.text_input("Seeds (override, optional)", "", key="train_preset_seeds",
                                   placeholder="e.g. 0 1 2 (default: the preset's)")
        for c in cfgs:
            submissions.append((c, f"{name}: {c['model']} on {c['dataset']}"))
    else:
        a, b, c_ = st.columns(3)
        dataset = a.selectbox("Dataset", cat["datasets"], key="train_dataset")
        kind = cat["datasets"][dataset]
        models = cat["models"][kind]
        model = b.selectbox("MainNet", models, key=f"train_model:{kind}")
        mode = c_.selectbox("Mode", cat["modes"], key="train_mode",
                            help="\n\n".join(f"**{m}**: {h}" for m, h in cat["mode_help"].items()))
        a, b, c_ = st.columns(3)
        options = attach_options(model)
        if mode == "mainnet-only":
            attach = []
            a.caption("No SideNet in mainnet-only mode.")
        elif options:
            attach = a.multiselect("Attach points", options, default=options[:1], key=f"train_attach:{model}",
                                   help="Where the SideNet reads the MainNet. Several: one SideNet each, in one run.")
        else:
            text = a.text_input("Attach points", "", key=f"train_attach_text:{model}", placeholder="e.g. encoder1",
                                help="This model's layers are only known once it is downloaded; empty: the paper's.")
            attach = text.replace(",", " ").split()
        hidden = b.number_input("SideNet hidden units", 1, 4096, 32, key="train_hidden")
        order = c_.selectbox("SideNet layer order", ["linear-bn-relu", "linear-relu-bn"], key="train_order")
        a, b, c_, d = st.columns(4)
        epochs = a.number_input("Epochs (0: the paper's)", 0, 500, 2, key="train_epochs")
        limit = b.number_input("Samples per split (0: all)", 0, 1_000_000, 0, step=100, key="train_limit",
                               help="Real, smaller subsets: quick experiments on a CPU.")
        batch = c_.number_input("Batch size (0: the paper's)", 0, 4096, 0, key="train_batch")
        lr = d.number_input("Learning rate (0: the paper's)", 0.0, 1.0, 0.0, format="%.6f", key="train_lr")
        init_from = None
        if mode == "frozen":
            from engine.runtime.checkpoint import frozen_bases

            candidates = frozen_bases(model, dataset, cache.list_runs() if not cache.db_problem() else [])
            init_from = st.selectbox("Initialise the MainNet from run", candidates, key="train_init_from",
                                     help="Frozen mode trains only the SideNet on an already-trained MainNet: the "
                                          "runs of this model and dataset with a checkpoint.")
        seeds_text = st.text_input("Seeds", "0", key="train_seeds", help="One run per seed: '0 1 2' or '0-4'.")
        config = {"model": model, "dataset": dataset, "mode": mode, "attach": list(attach),
                  "sidenet_hidden": int(hidden), "sidenet_order": order, "epochs": int(epochs) or None,
                  "limit": int(limit) or None, "batch_size": int(batch) or None, "lr": float(lr) or None,
                  "init_from": init_from}
        submissions.append((config, f"{model} on {dataset} ({mode}{', ' + ', '.join(attach) if attach else ''})"))

    if st.button("Queue training", type="primary", key="train_submit", icon=":material/play_arrow:"):
        try:
            seeds = parse_seeds(seeds_text) if seeds_text.strip() else None
            if source == "custom":
                from engine.config import TrainConfig

                TrainConfig.from_dict({**submissions[0][0], "seeds": seeds or [0]}).resolved()  # say what is wrong now
            ids = [queue.submit(cfg, seeds or cfg.get("seeds") or [0], label=label) for cfg, label in submissions]
            queue.ensure_worker()
            st.session_state["train_flash"] = f"Queued {len(ids)} job(s): {', '.join(ids)}"
        except (UserError, OSError) as err:  # OSError: e.g. a jobs folder that cannot be written
            st.error(md_escape(err), icon=":material/error:")

if msg := st.session_state.pop("train_flash", None):
    st.success(md_escape(msg), icon=":material/check:")


def read_jobs(show: bool = True) -> list[dict]:
    """The queue (reading it starts a worker when queued jobs wait and none is alive); [] and a
    message when the jobs folder cannot be read."""
    try:
        jobs = queue.jobs()
    except UserError as err:
        if show:
            st.error(f"Cannot read the job queue: {md_escape(err)}", icon=":material/error:")
        return []
    if queue.problem and show:
        st.warning(md_escape(queue.problem), icon=":material/warning:")
    return jobs


def act(action, *args) -> None:
    """A queue action from a button: a refusal is shown, never raised."""
    try:
        action(*args)
    except UserError as err:
        st.session_state["train_flash_error"] = str(err)
    st.rerun()


all_jobs = read_jobs(show=False)
active_now = any(j["state"] in ACTIVE for j in all_jobs)
BADGES = {"queued": ":gray[queued]", "running": ":blue[running]", "done": ":green[done]", "failed": ":red[failed]",
          "cancelled": ":orange[cancelled]", BROKEN: ":red[broken]"}


def show_job(j: dict) -> None:
    jid, st_ = j["job_id"], j["state"]
    badge = BADGES.get(st_, ":red[unknown]")
    with st.container(border=True):
        head, btn = st.columns([6, 1], vertical_alignment="center")
        head.markdown(f"**{md_escape(j['label'])}** · seeds {md_escape(' '.join(map(str, j['seeds'])))} · {badge}")
        head.caption(f"job {md_escape(jid)} · submitted {md_escape(j.get('submitted_at', ''))}"
                     f"{' · on ' + md_escape(j['device']) if j.get('device') else ''}")
        if st_ in ACTIVE:
            if j.get("cancel_requested"):
                btn.caption("cancelling...")
            elif btn.button("Cancel", key=f"cancel:{jid}", icon=":material/stop:"):
                act(queue.cancel, jid)
            st.progress(j["fraction"], text=md_escape(progress_text(j["progress"])) if st_ == "running" else
                        "waiting for the job ahead of it")
        elif st_ == "done":
            st.success(f"Done: {md_escape(', '.join(j.get('run_ids') or []))}. See them on the Trade-off and Runs "
                       "pages.", icon=":material/check:")
        elif st_ == "failed":
            st.error(f"Failed: {md_escape(j.get('error'))}", icon=":material/error:")
        elif st_ == BROKEN:
            st.error(f"This job folder cannot be read: {md_escape(j.get('error'))}. Clear removes it.",
                     icon=":material/error:")
        else:
            why = ": " + md_escape(j["error"]) if j.get("error") and j["error"] != "cancelled" else ""
            st.warning(f"Cancelled{why}. A run it had started is recorded as failed, never as complete.",
                       icon=":material/stop:")
        if st_ not in ("queued", BROKEN):
            with st.expander("Log", expanded=st_ == "running"):
                st.code(queue.log(jid, max_chars=6000) or "(empty)", language=None)


@st.fragment(run_every=1.0 if active_now else None)
def job_list() -> None:
    current = read_jobs()
    if msg := st.session_state.pop("train_flash_error", None):
        st.error(md_escape(msg), icon=":material/error:")
    active = [j for j in current if j["state"] in ACTIVE]
    finished = [j for j in reversed(current) if j["state"] not in ACTIVE]
    was_active = st.session_state.get("train_was_active", False)
    st.session_state["train_was_active"] = bool(active)
    if was_active and not active:
        st.rerun()  # everything finished: refresh the whole app (sidebar counts, stop polling)
    st.subheader(f"Queue ({len(active)} active)")
    if not current:
        st.caption("No jobs yet: queue one above.")
    for j in active:
        show_job(j)
    if finished:
        top, clear = st.columns([6, 1], vertical_alignment="center")
        top.markdown(f"**Finished** ({len(finished)}, newest first)")
        if clear.button("Clear", key="train_clear",
                        help="Forget finished and broken jobs (their runs stay in the DB)."):
            act(queue.clear_finished)
        for j in finished[:10]:
            show_job(j)


job_list()
