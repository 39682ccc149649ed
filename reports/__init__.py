"""The study report: one self-contained HTML page comparing human coders and RAC.

``reports.render`` gathers ``scores.json`` and the study files and renders ``templates/index.html.j2``;
``reports.figures`` draws the figures with matplotlib. The report computes no metric: every number on the
page is read from ``scores.json``, written by `bench score` and `bench evaluate`. Entry point:
``render_report(study, out=None, include_text=False)``, behind `bench report`.
"""
