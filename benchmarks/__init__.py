"""`make bench`: the operator measured as a black box against a real API server (issue 17).

The operator runs as a subprocess with its least-privilege identity; the harness creates,
edits and watches AIAgents, counts writes on the API server's own metrics, reads memory and
CPU from /proc, and compares every time with `kubectl apply --server-side` of the very
objects the operator renders. Nothing here imports the operator's internals except its
renderers (for the baseline) and its constants.
"""
