"""One module per subcommand: plain typed functions, no click, no printing."""
