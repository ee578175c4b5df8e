"""SideNets Explorer: the Streamlit app (entry: explorer/app.py)."""
