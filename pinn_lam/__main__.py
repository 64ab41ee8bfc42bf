import sys

from pinn_lam.cli.main import main

sys.exit(main())
