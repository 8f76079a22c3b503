"""API dialects the gateway translates to OpenAI chat for the model servers (Anthropic Messages)."""
