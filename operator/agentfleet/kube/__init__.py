"""The one way to talk to the API server: the client, informers and the work queue."""
