"""Data: the JSON schemas of the audit reports (see SOURCES.md)."""
