"""The figure gallery: one versioned config per figure in ``experiments/figures/``, built,
drawn and indexed by ``sim figures``."""
