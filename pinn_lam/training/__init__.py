"""How it is solved: points (:mod:`.sampling`), the loss (:mod:`.loss`), the loop
(:mod:`.trainer`), checkpoints, metrics, and :func:`~pinn_lam.training.solve.solve`."""
