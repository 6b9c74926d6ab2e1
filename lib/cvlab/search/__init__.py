"""Search spaces and early stopping over notebook runs, built on Optuna: a grid's `search:`
samples its runs, its `prune:` stops hopeless ones at epoch ends (`cvlab.search.study` is the
driver's side, `cvlab.search.trial_link` the run's). Optuna is imported only where used."""
