"""The explorer's custom Streamlit components (st.components.v2: inline HTML/JS/CSS, no iframe)."""
