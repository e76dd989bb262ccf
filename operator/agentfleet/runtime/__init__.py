"""The operator process: kopf glue, health, sharding and leader election. Only this
layer imports kopf."""
