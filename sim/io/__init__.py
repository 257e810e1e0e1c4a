"""Files: atomic writes, manifests and provenance, and the rules for where results may be
written.

May import: :mod:`sim.exceptions` only.
"""
