"""The ``pinn-lam`` command line (:mod:`.main`); one module per subcommand."""
