"""The support-agent desk: a web page (and MCP tools) that call the ExplainRec gRPC service.

Nothing here ranks or explains: every answer comes from the gRPC service through `gateway`.
"""
