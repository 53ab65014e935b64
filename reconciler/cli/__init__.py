"""The command line: the only room that imports click. One module per command."""
