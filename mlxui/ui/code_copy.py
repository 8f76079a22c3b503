"""A Copy button on every code block in rendered markdown (chat replies, model cards), and the
layout rules that keep long code and long words inside their bubble on a narrow screen."""

from __future__ import annotations

from nicegui import ui

# One observer per page wraps each code block when it appears: the button sits in the wrapper's
# top strip, above the code (so it never covers a line) and outside the block's own horizontal
# scroll (so it stays in view). The text is copied from the DOM: nothing round-trips through the
# server.
SCRIPT = """
<script>
(() => {
  const wrap = (root) => root.querySelectorAll('.nicegui-markdown pre:not([data-copy])').forEach((pre) => {
    pre.dataset.copy = '1';
    const box = document.createElement('div');
    box.className = 'mlxui-code';
    pre.replaceWith(box);
    box.appendChild(pre);
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Copy';
    button.className = 'mlxui-copy';
    button.setAttribute('aria-label', 'Copy the code');
    button.setAttribute('data-testid', 'copy-code');
    button.onclick = () => navigator.clipboard.writeText(pre.innerText.trimEnd())
      .then(() => { button.textContent = 'Copied'; setTimeout(() => button.textContent = 'Copy', 1200); });
    box.appendChild(button);
  });
  new MutationObserver(() => wrap(document)).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>
<style>
.nicegui-markdown { min-width: 0; max-width: 100%; overflow-wrap: anywhere; }
.mlxui-code { position: relative; max-width: 100%; margin: 0.5em 0; }
.mlxui-code > pre { overflow-x: auto; max-width: 100%; margin: 0; padding-top: 1.9rem; overflow-wrap: normal; }
.mlxui-copy { position: absolute; top: 4px; right: 6px; font-size: 11px; padding: 1px 8px; border-radius: 4px;
              background: rgba(127,127,127,.25); color: inherit; cursor: pointer; }
.nicegui-markdown table { display: block; max-width: 100%; overflow-x: auto; }
</style>
"""


def add_code_copy_buttons() -> None:
    ui.add_head_html(SCRIPT, shared=True)
