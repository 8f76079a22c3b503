"""API dialects other than OpenAI's chat: each translates to `servers/model_calls.py` and back."""
