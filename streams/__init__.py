"""The Faust app, its settings, topics and agents, and the `ioc` command line.

The only package that imports the others (`domains`, `geo`, `sinks`); they never import it.
"""
