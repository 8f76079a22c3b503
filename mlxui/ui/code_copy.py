"""A Copy button on every code block in rendered markdown (chat replies, model cards)."""

from __future__ import annotations

from nicegui import ui

# One observer per page adds the button when a code block appears; the text is copied from the
# DOM, so nothing round-trips through the server.
SCRIPT = """
<script>
(() => {
  const addButtons = (root) => root.querySelectorAll('.nicegui-markdown pre:not([data-copy])').forEach((pre) => {
    pre.dataset.copy = '1';
    pre.style.position = 'relative';
    const button = document.createElement('button');
    button.textContent = 'Copy';
    button.className = 'mlxui-copy';
    button.setAttribute('data-testid', 'copy-code');
    button.onclick = () => navigator.clipboard.writeText(pre.innerText.replace(/Copy(ied)?$/, '').trimEnd())
      .then(() => { button.textContent = 'Copied'; setTimeout(() => button.textContent = 'Copy', 1200); });
    pre.appendChild(button);
  });
  new MutationObserver(() => addButtons(document)).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
<style>
.mlxui-copy { position: absolute; top: 4px; right: 4px; font-size: 11px; padding: 1px 8px; border-radius: 4px;
              background: rgba(127,127,127,.25); color: inherit; cursor: pointer; }
</style>
"""


def add_code_copy_buttons() -> None:
    ui.add_head_html(SCRIPT, shared=True)
