"""Design a SideNet: pick a cached backbone (a frozen MainNet whose features are in the feature
cache), an attach point, a size, a layer order and seeds; the runs train from the cache as a
background job in seconds and land beside the others on the Trade-off and Calibration pages."""
import streamlit as st

from engine.errors import UserError
from engine.features import FeatureCache
from engine.jobs import ACTIVE
from engine.jobs.progress import parse_seeds, progress_text
from explorer import cache
from explorer.formatting import md_escape

st.title("Design a SideNet")
st.caption("A frozen backbone runs once per sample; what its heads read is cached on disk "
           "(`python -m engine features list`). A SideNet designed here trains on those cached features only, "
           "so a run takes seconds on a CPU. No input augmentation is applied to cached training.")

backbones = FeatureCache().backbones()
if not backbones:
    st.info("The feature cache is empty. It fills when a run trains in **head** mode (a pretrained backbone, e.g. "
            "`python -m engine train --model minilm-l6 --dataset rt-polarity --mode head --epochs 5 --lr 1e-3 "
            "--batch-size 256`) or in **frozen** mode on "
            "an earlier run (`--mode frozen --init-from RUN`). The quickstart trains jointly and caches nothing; the "
            "head-mode MiniLM run above takes about 80 s on a 2-core CPU.", icon=":material/info:")
    st.stop()

labels = {b["id"]: b["label"] for b in backbones}
chosen = st.selectbox("Backbone (frozen)", list(labels), format_func=labels.get, key="design_backbone")
backbone = next(b for b in backbones if b["id"] == chosen)
source = backbone["source"]
weights = "pretrained weights" if source["mode"] == "head" else f"the MainNet of run {md_escape(source['init_from'])}"
st.caption(f"Cached taps: {md_escape(', '.join(backbone['taps']))} · {backbone['size']} on disk · "
           f"mode **{source['mode']}** ({weights})")

with st.form("design_form", border=True):
    a, b, c = st.columns(3)
    cached_attach = [t for t in backbone["taps"] if t != "head"]
    attach = a.multiselect("Attach point(s)", backbone["attach_names"], default=cached_attach[:1],
                           help="Cached ones train at once; others are cached first (one pass of the backbone).")
    hidden = b.number_input("Hidden units", 1, 4096, 32, help="The paper uses 32 (its Table 3 compares 768).")
    order = c.selectbox("Layer order", ["linear-bn-relu", "linear-relu-bn"])
    a, b, c, d = st.columns(4)
    epochs = a.number_input("Epochs", 1, 200, 5)
    lr = b.number_input("Learning rate", 1e-5, 1.0, 1e-3, format="%.5f")
    batch = c.number_input("Batch size", 2, 4096, 256)
    seeds_text = d.text_input("Seeds", "0", help="One run per seed: '0 1 2' or '0-4'.")
    submitted = st.form_submit_button("Train it", type="primary", icon=":material/play_arrow:")

if submitted:
    try:
        if not attach:
            raise UserError("pick at least one attach point")
        seeds = parse_seeds(seeds_text)
        config = {**backbone["source"], "attach": list(attach), "sidenet_hidden": int(hidden), "sidenet_order": order,
                  "epochs": int(epochs), "lr": float(lr), "batch_size": int(batch), "seeds": seeds}
        from engine.config import TrainConfig

        TrainConfig.from_dict(config).resolved()  # say what is wrong now, not in the job
        queue = cache.job_queue()
        job = queue.submit(config, seeds, label=f"design: {backbone['source']['model']} + SideNet@{','.join(attach)} "
                                                f"(h{hidden}, {order})")
        queue.ensure_worker()
        st.session_state["design_job"] = job
    except UserError as err:
        st.error(md_escape(err), icon=":material/error:")


def current_job() -> dict | None:
    job_id = st.session_state.get("design_job")
    try:
        return cache.job_queue().job(job_id) if job_id else None
    except UserError:
        return None


first = current_job()


@st.fragment(run_every=0.5 if first and first["state"] in ACTIVE else None)
def follow() -> None:
    job = current_job()
    if job is None:
        return
    job_id = job["job_id"]
    if job["state"] in ACTIVE:
        st.progress(job["fraction"], text=progress_text(job["progress"]) if job["state"] == "running" else "queued")
    elif job["state"] == "done":
        st.success(f"Done: {md_escape(', '.join(job.get('run_ids') or []))}. Open the Trade-off or Calibration page to "
                   "see the new SideNet beside the others.", icon=":material/check:")
        if not st.session_state.get("design_seen") == job_id:
            st.session_state["design_seen"] = job_id
            st.rerun()  # the whole app: the sidebar's run count, the other pages' caches
    else:
        st.error(f"{job['state'].capitalize()}: {md_escape(job.get('error'))}", icon=":material/error:")


follow()
