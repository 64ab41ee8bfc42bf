"""Many runs: optimizer comparisons (:mod:`.compare`), their suites, reports and tables, stiffness
diagnostics, and the paper figures."""
