"""Optimizers: LAM (:mod:`.lam`, with its fused and foreach paths in :mod:`.lam_fast`), L-BFGS
with stop diagnosis (:mod:`.lbfgs`), self-scaled quasi-Newton methods (:mod:`.ssbfgs`),
Levenberg–Marquardt for least-squares losses (:mod:`.lm`, its linear algebra in
:mod:`.least_squares`), and one table of every optimizer a run can use (:mod:`.registry`)."""
