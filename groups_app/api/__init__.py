"""The doors for scripts and assistants: the REST API (/api/v1/) and the MCP server (/mcp)."""
