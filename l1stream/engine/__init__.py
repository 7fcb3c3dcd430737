"""The engine: plan fragments into tasks, scan them to exact states, tree-merge the
states on a Dask scheduler (threads, processes, a cluster), and wrap them in a result.

Also the state store, which lets a scan skip fragments whose exact state is kept.
"""
