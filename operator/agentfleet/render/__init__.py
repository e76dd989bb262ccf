"""Pure functions from an AIAgent (and its RenderContext) to the Kubernetes objects it owns.

No API calls here: every renderer takes the parsed agent and returns plain dicts, which is
what makes them testable against golden files. Which renderer builds which kind, and in what
order, is the table in agentfleet.render.children.
"""
