"""Data: the jinja2 template of the HTML report."""
