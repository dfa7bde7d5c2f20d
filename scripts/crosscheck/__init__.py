"""Cross-checks: sockbench run beside other tools (`peers`)."""
