"""Reproducing and extending the paper with the ``steerable`` library.

Not part of the installed package: the library never imports this folder. ``python -m paper`` (or
``steer reproduce`` from the repository root) runs the grids of :mod:`paper.grids` into a results
store, writes the report (:mod:`paper.report`) and the reproduction page (:mod:`paper.doc`), where
each claim of :mod:`paper.claims` gets its verdict beside the published figures of
:mod:`paper.published`.
"""
