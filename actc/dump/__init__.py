"""``actc dump``: views of a program for people and scripts.

- ``text.render``: the readable, MLIR-like text IR (the default view);
- ``json_fmt.render`` / ``json_fmt.to_dict``: a stable, complete JSON document;
- ``dot.render``: a graphviz graph (``dot.render_file`` turns it into SVG/PNG/PDF);
- ``tables``: the op type histogram and the weight list;
- ``common.OpFilter``: the --op-type / --var / --name-scope filters, usable as ``ops=``;
- ``defaults``: the one table of attrs the text view hides by default.
"""
