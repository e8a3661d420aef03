"""The run: its lifecycle object, the case grid, one case end to end, start and finish, the manifest.

Runs without pytest: the plugin (harness.plugin) only hands pytest's objects to these modules.
"""
