"""The model: the config schema, the equations, the per-period step, the policies' spend
tables and the random streams.

Everything an engine needs to know about a customer lives here, once: the equations
(M1)-(M8), (C1)-(C6) of the model specification (``docs/model.md``) in
:mod:`sim.model.equations`, the packing of a config into the kernels' arrays in
:mod:`sim.model.arrays`, the period's accounting shared by every engine in
:mod:`sim.model.step`, the spend tables of :mod:`sim.model.policies` and the
per-customer random streams of :mod:`sim.model.streams`.

May import: :mod:`sim.exceptions`, :mod:`sim.io`. Imported by every other subpackage.
"""
