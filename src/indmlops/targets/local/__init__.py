"""The local target: the reference stack's real services as processes on 127.0.0.1 under supervisord, with
everything that runs them (layout, rendered configs, one module per service, the stack lifecycle). Nothing here
imports the Kubernetes target."""
