"""Plain NumPy versions of every compiled kernel.

They are the ground truth for the parity tests and the baselines of the
benchmarks; they favour clarity over speed.
"""
