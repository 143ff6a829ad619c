"""What every layer shares and none owns: domain errors, request limits and validation, the config mechanism."""
