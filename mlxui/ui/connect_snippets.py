"""Copy-paste set-ups that point a tool at mlxui: the README's "Connect a tool" section and the
Connect dialog (ui/components/connect_dialog.py) are the same text, filled with this app's gateway
address, the chosen model and a key placeholder (tests/test_connect_dialog.py checks the README).

The stored key is never put in a snippet: it says `KEY_PLACEHOLDER`, quoted so that a snippet
pasted unchanged still runs while no key is set (then any value is taken).
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_PLACEHOLDER = "<your key>"
MODEL_PLACEHOLDER = "<model>"
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})


@dataclass(frozen=True)
class Snippet:
    key: str  # stable name: test ids and aria-labels
    title: str
    note: str
    code: str


def client_base_url(host: str, port: int) -> str:
    """The address a tool on this machine uses: a wildcard bind (`0.0.0.0`) is not one to dial."""
    name = "127.0.0.1" if host in WILDCARD_HOSTS else host
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"http://{name}:{port}"


def snippets(base_url: str, ollama_url: str, model: str | None) -> list[Snippet]:
    """Every set-up, for the gateway at `base_url` (no `/v1`) and the Ollama API at `ollama_url`."""
    name = model or MODEL_PLACEHOLDER
    key = KEY_PLACEHOLDER
    v1 = f"{base_url}/v1"
    return [
        Snippet(
            "claude-code",
            "Claude Code",
            "Anthropic Messages on the gateway; name the model for every tier Claude Code uses.",
            f'export ANTHROPIC_BASE_URL="{base_url}"\n'
            f'export ANTHROPIC_AUTH_TOKEN="{key}"\n'
            'export ANTHROPIC_API_KEY=""\n'
            f'export ANTHROPIC_MODEL="{name}"\n'
            f'export ANTHROPIC_DEFAULT_OPUS_MODEL="{name}"\n'
            f'export ANTHROPIC_DEFAULT_SONNET_MODEL="{name}"\n'
            f'export ANTHROPIC_DEFAULT_HAIKU_MODEL="{name}"\n'
            "claude",
        ),
        Snippet(
            "codex-config",
            "Codex CLI: ~/.codex/config.toml",
            "A custom provider speaking the OpenAI Responses API (Codex adds /responses to base_url).",
            f'model = "{name}"\n'
            'model_provider = "mlxui"\n\n'
            "[model_providers.mlxui]\n"
            'name = "mlxui"\n'
            f'base_url = "{v1}"\n'
            'env_key = "MLXUI_API_KEY"\n'
            'wire_api = "responses"',
        ),
        Snippet(
            "codex-run",
            "Codex CLI: run it",
            "Codex reads the key from the variable named by env_key.",
            f'export MLXUI_API_KEY="{key}"\ncodex',
        ),
        Snippet(
            "openai-python",
            "OpenAI SDK (Python)",
            "pip install openai; chat completions and the Responses API both work.",
            "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{v1}", api_key="{key}")\n'
            "reply = client.chat.completions.create(\n"
            f'    model="{name}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n'
            ")\n"
            "print(reply.choices[0].message.content)",
        ),
        Snippet(
            "ollama",
            "Apps that speak the Ollama API",
            f"Set the app's Ollama host to {ollama_url}. With the ollama Python library:",
            "from ollama import Client\n\n"
            f'client = Client(host="{ollama_url}", headers={{"Authorization": "Bearer {key}"}})\n'
            f'reply = client.chat(model="{name}", messages=[{{"role": "user", "content": "Hello!"}}])\n'
            'print(reply["message"]["content"])',
        ),
        Snippet(
            "open-webui",
            "Open WebUI",
            "Admin Panel → Settings → Connections: an OpenAI API connection (URL and key) or the "
            "Ollama API URL; or when starting it (run in Docker: use host.docker.internal instead "
            "of 127.0.0.1 and start mlxui with MLXUI_ALLOWED_HOSTS=host.docker.internal).",
            f'OPENAI_API_BASE_URL="{v1}" OPENAI_API_KEY="{key}" \\\n'
            f'  OLLAMA_BASE_URL="{ollama_url}" open-webui serve',
        ),
        Snippet(
            "curl",
            "curl",
            "Any OpenAI-compatible client: the same base URL and key.",
            f"curl {v1}/chat/completions \\\n"
            "  -H 'Content-Type: application/json' \\\n"
            f"  -H 'Authorization: Bearer {key}' \\\n"
            f'  -d \'{{"model": "{name}", "messages": [{{"role": "user", "content": "Hello!"}}]}}\'',
        ),
    ]
