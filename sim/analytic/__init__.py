"""Closed-form CLV models used to validate the simulator: Pfeifer & Carraway's Markov chains,
Gupta & Lehmann's margin multiple, Fader & Hardie's shifted-beta-geometric model,
Blattberg & Deighton's customer equity, and the lifecycle model's own Markov-reducible
chain.

May import: :mod:`sim.model`, :mod:`sim.exceptions`.
"""
