"""The SimPy agent-based market: customers as processes, coupled through a shared budget,
service capacity, word of mouth, acquisition and competitors (``docs/model.md`` §9).
"""
