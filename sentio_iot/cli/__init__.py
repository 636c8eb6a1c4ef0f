"""The ``sentio`` command line: one group, one module per subcommand group."""
