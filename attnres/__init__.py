"""attnres: the console script at the top of the import graph.

attnres/cli.py is the only module that knows every layer (records, corpus, harness, sweeps,
analysis); it imports each layer's command module only when that command runs. No layer imports
this package.
"""
