"""Live demo: one input through a trained run's real cascade (engine.runtime.cascade.Cascade).

Pick a run (its checkpoint must exist), a theta and an input (a test sample, an uploaded image or
a typed sentence); see the SideNet's probabilities against theta, the exit decision, who answered,
the MainNet's answer on request, and the measured time of the path taken vs the full MainNet.
All logic lives in engine.runtime.demo / engine.runtime.cascade; this page only lays it out.
"""
from __future__ import annotations

import hashlib
import math

import plotly.graph_objects as go
import streamlit as st
import torch

from engine.errors import UserError
from engine.runtime import demo as D
from engine.runtime.cascade import Cascade, auto_theta_for_run
from engine.runtime.device import pick_device
from engine.store import Store
from explorer import cache, widgets
from explorer.formatting import md_escape

GALLERY_PAGE = 12
TIMING_REPEATS = 7


@st.cache_resource(max_entries=3, show_spinner="Loading the run's model from its checkpoint…")
def load_model(db_path: str, run_id: str, checkpoint: str, device: str):
    """(model, data, collate) of a run, in eval mode; one copy per run shared by all sessions."""
    from engine.runtime.cascade import prepare
    from engine.runtime.checkpoint import model_for_run

    store = Store(db_path)
    model, data, collate = model_for_run(store.get_run(run_id), store, device)
    return prepare(model), data, collate  # eval mode, channels_last for images: once, before sharing


@st.cache_data(max_entries=32, show_spinner=False)
def auto_theta(db_path: str, version: tuple, run_id: str, attach: str, rule: str) -> dict | None:
    try:
        return auto_theta_for_run(Store(db_path), run_id, attach, exit_rule=rule)
    except UserError:
        return None


@st.cache_data(max_entries=8, show_spinner="Decoding the image…")
def decode_upload(data: bytes):
    return D.decode_image(data)


def probability_chart(result: dict, class_names: list[str]) -> go.Figure:
    probs, theta, top = result["side_probs"], result["theta"], result["side_pred"]
    colors = ["#2e7d32" if (i == top and result["exited"]) else "#1f77b4" if i == top else "#b0bec5"
              for i in range(len(probs))]
    fig = go.Figure(go.Bar(x=class_names, y=probs, marker_color=colors,
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    label = "theta = 1: never exit" if theta >= 1.0 else f"theta = {theta:.3f}"
    fig.add_hline(y=min(theta, 1.0), line_dash="dash", line_color="#d62728",
                  annotation_text=label, annotation_position="top left")
    fig.update_layout(title=f"SideNet at {result['attach']}: class probabilities (confidence "
                            f"{result['side_conf']:.3f})", yaxis=dict(range=[0, 1.05], title="probability"),
                      xaxis_title=None, height=340, margin=dict(l=10, r=10, t=50, b=10), showlegend=False)
    return fig


def show_main(main: dict) -> None:
    st.write(f"**MainNet's answer: {md_escape(main['answer'])}** (its confidence {main['conf']:.3f})")


st.header("Live demo: a real early exit")
st.caption("One input through the cascade: the SideNet answers when its confidence reaches theta; otherwise "
           "the same intermediate tensor continues through the rest of the MainNet.")

runs = widgets.require_runs()
store = cache.store()

by_label = {D.run_label(r, store): r for r in runs}
labels = list(by_label)
default = next((i for i, r in enumerate(runs) if D.checkpoint_problem(r, store) is None), 0)
run = by_label[st.selectbox("Run", labels, index=default, key="demo_run")]
if (msg := D.checkpoint_problem(run, store)) is not None:
    st.error(msg)
    st.stop()

device = str(pick_device("auto"))
try:
    model, data, collate = load_model(str(store.path), run["run_id"], run["checkpoint"], device)
except UserError as err:
    st.error(f"Cannot load run {run['run_id']}: {err}")
    st.stop()
except Exception as err:  # a checkpoint from another model version, a broken file, ...
    st.error(f"Cannot load run {run['run_id']}: its checkpoint does not fit its config "
             f"({err.__class__.__name__}: {str(err).splitlines()[0][:300]})")
    st.stop()

attach = run["attach"][0] if len(run["attach"]) == 1 else st.selectbox("SideNet", run["attach"], key="demo_attach")
rule = widgets.exit_rule_select()
auto = auto_theta(str(store.path), store.version(), run["run_id"], attach, rule)
default_theta = D.slider_default(auto)
theta = st.slider("theta (exit when the SideNet's confidence ≥ theta; 1 = never exit)", 0.0, 1.0,
                  value=default_theta, step=0.001, format="%.3f", key=f"demo_theta_{run['run_id']}_{attach}_{rule}")
if auto:
    st.caption(f"Suggested theta {auto['theta']:.3f}: the largest exit ({auto['exit_fraction']:.0%} of the validation "
               f"split) that loses at most {auto['max_drop']:.1%} accuracy against the MainNet.")
# One Cascade per session and run (theta is a per-session setting), kept across reruns: on CUDA
# its pieces are CUDA graphs, captured once.
cascades = st.session_state.setdefault("demo_cascades", {})
cascade_key = (str(store.path), run["run_id"], attach, device, rule)
if cascade_key not in cascades or cascades[cascade_key].model is not model:
    cascades[cascade_key] = Cascade(model, attach, theta, amp=(run.get("config") or {}).get("amp", "auto"),
                                    exit_rule=rule)
cascade = cascades[cascade_key]
cascade.theta = theta
class_names = run.get("class_names") or data.class_names

# ----------------------------------------------------------------------------- the input
sources = ["Test sample", "Upload an image"] if data.kind == "image" else ["Test sample", "Type a sentence"]
source = st.radio("Input", sources, horizontal=True, key=f"demo_source_{data.kind}")
raw, input_key, truth = None, None, None
if source == "Test sample":
    n = len(data.test)
    pages = max(1, math.ceil(n / GALLERY_PAGE))
    page = st.number_input(f"Gallery page (of {pages})", 1, pages, 1, key=f"demo_page_{run['run_id']}") - 1
    items = D.gallery(data, page * GALLERY_PAGE, GALLERY_PAGE)
    fmt = {i: f"#{i} · {label}" for i, _, label in items}
    if data.kind == "image":
        st.image([img for _, img, _ in items], caption=list(fmt.values()), width=72)
        index = st.selectbox("Test image", list(fmt), format_func=fmt.get, key=f"demo_pick_image_{run['run_id']}_{page}")
    else:
        texts = {i: f"{text}  ({label})" for i, text, label in items}
        index = st.radio("Test sentence (true label in brackets)", list(texts), format_func=texts.get,
                         key=f"demo_pick_text_{run['run_id']}_{page}")
    raw, input_key, truth = data.raw_test(index), f"test{index}", fmt[index].split(" · ", 1)[1]
elif source == "Upload an image":
    upload = st.file_uploader("A PNG or JPEG image (any size up to 40 megapixels / 20 MB, colour or grayscale)",
                              type=["png", "jpg", "jpeg"], key="demo_upload")
    if upload is None:
        st.info("Upload an image to classify it. It is converted exactly like the dataset's images "
                f"({data.image_size} x {data.image_size}, the dataset's normalisation).")
        st.stop()
    data_bytes = upload.getvalue()
    try:
        raw = decode_upload(data_bytes)
    except UserError as err:
        st.error(f"Cannot use this file: {err}")
        st.stop()
    input_key = "upload" + hashlib.sha1(data_bytes).hexdigest()[:16]
else:
    typed = st.text_area("A sentence", placeholder="e.g. a gripping, beautifully acted film", key="demo_text")
    try:
        text_input = D.prepare_text(typed, model.mainnet.tokenizer, model.mainnet.max_length)
    except UserError as err:
        st.info(f"{str(err)[0].upper()}{str(err)[1:]}.")
        st.stop()
    if text_input.notice:
        st.warning(f"Long input: {text_input.notice}. The model reads: “{text_input.kept_text}”")
    raw, input_key = text_input.text, "text" + hashlib.sha1(text_input.text.encode()).hexdigest()[:16]

# ----------------------------------------------------------------------------- the cascade
try:
    x = D.to_batch(raw, data, collate, device)
    result_key = (cascade_key, theta, input_key)  # the same question is not re-run (and re-timed) on a rerun
    if st.session_state.get("demo_result_key") != result_key:
        st.session_state["demo_result"] = D.run_single(cascade, x, class_names, repeats=TIMING_REPEATS)
        st.session_state["demo_result_key"] = result_key
    result = st.session_state["demo_result"]
except UserError as err:
    st.error(str(err))
    st.stop()

left, right = st.columns([1, 2])
with left:
    if data.kind == "image":
        st.image(raw, caption="the input" + (f" (true label: {truth})" if truth else ""), width=160)
        st.image(D.model_view(x, data), caption=f"what the model sees ({data.image_size} px)", width=160)
    else:
        st.markdown(f"> {raw}")
        if truth:
            st.caption(f"true label: {truth}")
with right:
    st.plotly_chart(probability_chart(result, class_names), key="demo_chart")

if result["exited"]:
    st.success(f"**Exit.** SideNet confidence {result['side_conf']:.3f} ≥ theta {theta:.3f}: the SideNet answers "
               f"**{md_escape(result['answer'])}**; the rest of the MainNet was never run.")
else:
    why = "theta = 1 never exits" if theta >= 1.0 else f"SideNet confidence {result['side_conf']:.3f} < theta {theta:.3f}"
    st.info(f"**Deferred.** {why}: x_c continued through the rest of the MainNet, which answers "
            f"**{md_escape(result['answer'])}** (the SideNet said {md_escape(result['side_answer'])}).")

c1, c2, c3 = st.columns(3)
c1.metric("Answer", result["answer"], help="the cascade's final answer")
c2.metric("Answered by", result["head"], help=f"SideNet: the head attached after {result['attach']}; "
          "MainNet: the whole network")
c3.metric("Time of the path taken", f"{result['path_ms']:.2f} ms",
          delta=f"{result['speedup']:.2f}x vs full MainNet {result['full_ms']:.2f} ms", delta_color="off")
st.caption(f"Times: median of {TIMING_REPEATS} interleaved runs each on {device} ({torch.get_num_threads()} "
           "threads), batch of one, this input. "
           "A shared or busy machine makes them noisy.")

if result["main"] is not None:
    show_main(result["main"])
else:
    asked = st.session_state.get("demo_main_asked")
    key = (run["run_id"], attach, input_key)
    if st.button("Ask the MainNet too (runs the whole network)", key="demo_ask_main"):
        st.session_state["demo_main_asked"] = asked = key
    if asked == key:
        show_main(D.main_answer(cascade, x, class_names))
