"""Design a SideNet: pick a frozen backbone, an attach point, a size and seeds; train from the
feature cache as a background job (seconds per run), see the result beside the others."""
import streamlit as st

st.title("Design a SideNet")
st.info("Coming in this change: training SideNets from the feature cache.", icon=":material/construction:")
