"""Streamlit pages of the console (one task per page) and their shared UI helpers."""
