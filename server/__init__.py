"""The gRPC service and the `explainrec` command line."""
