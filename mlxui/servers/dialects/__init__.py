"""The API dialects the gateway translates to a model server's OpenAI chat: OpenAI Responses,
Anthropic Messages, the Ollama API. Each goes to the model through `servers/model_calls.py`."""
