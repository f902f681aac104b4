"""Development tools that read the repository itself (not shipped in any package)."""
