"""Reports from the history store: tables (Markdown, CSV), a self-contained HTML page with plots,
and the regression gate that compares two runs."""
