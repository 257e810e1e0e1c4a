"""The partial aggregates every engine writes, their order-fixed reduction, and the tidy
result tables they become (:class:`sim.tables.result.ProjectionResult`).

May import: :mod:`sim.model`, :mod:`sim.exceptions`, :mod:`sim.io`.
"""
